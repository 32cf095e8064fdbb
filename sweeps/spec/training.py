"""The ``training`` of a spec: the fields of :class:`gradnorm_core.TrainConfig`, checked
as a trial checks them (:class:`trainables.TrialConfig`'s ``training``: strict, finite, in
TrainConfig's ranges, a seed NumPy and Optuna take)."""

from __future__ import annotations

from typing import Any

from ..validation import describe, problem

__all__ = ["check_training"]


def check_training(value: Any) -> dict[str, Any]:
    """Every TrainConfig field, defaults filled in; ``device`` kept as given (``"auto"``,
    ``"cuda"``: the machine reading the spec need not be the one with the GPUs)."""
    from trainables import TrainingConfig, TrialConfigError

    if not isinstance(value, dict):
        raise problem(f"expected a mapping, got {describe(value)}", "write it as e.g. {epochs: 8, batch_size: 64, lr: 0.002}")
    try:
        return TrainingConfig.from_dict(value, at=("training",)).to_dict()
    except TrialConfigError as error:
        raise problem(error.what, error.fix, error.at[1:]) from None
