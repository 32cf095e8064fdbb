"""The ``training`` of a spec: the fields of :class:`gradnorm_core.training.TrainConfig`, checked
by TrainConfig itself. The accepted keys are its dataclass fields."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..validation import describe, did_you_mean, one_line, problem

__all__ = ["check_device", "check_training"]

_FIXES = {
    "epochs": "give a whole number of epochs, e.g. 8",
    "batch_size": "give a whole batch size, e.g. 64",
    "lr": "give a positive learning rate, e.g. 0.002",
    "weight_decay": "give 0 or a positive number, e.g. 0.0001",
    "seed": "give a whole number >= 0, e.g. 0",
}
_DEVICE_FIX = "use 'auto', 'cpu' or 'cuda[:N]'"


def check_training(value: Any) -> dict[str, Any]:
    """Every TrainConfig field, defaults filled in; ``device`` kept as given (``"auto"``,
    ``"cuda"``: the machine reading the spec need not be the one with the GPUs)."""
    from gradnorm_core import TrainConfig

    config_fields = fields(TrainConfig)
    accepted = tuple(field.name for field in config_fields)
    if not isinstance(value, dict):
        raise problem(f"expected a mapping, got {describe(value)}", "write it as e.g. {epochs: 8, batch_size: 64, lr: 0.002}")
    for key in value:
        if key not in accepted:
            raise problem(
                f"unknown training key {key!r}", f"{did_you_mean(key, accepted)}accepted: {', '.join(accepted)}", (key,)
            )
    for field in config_fields:  # TrainConfig would take True for 1.0
        if field.type in (float, "float") and isinstance(value.get(field.name), bool):
            raise problem(f"expected a number, got {describe(value[field.name])}", _FIXES.get(field.name, "give a number"), (field.name,))
    device = value.get("device", "auto")
    check_device(device)
    try:
        config = TrainConfig(**{**value, "device": "cpu"})  # availability is not checked here
    except (TypeError, ValueError) as exc:
        message = one_line(str(exc))
        key = next((k for k in accepted if message.startswith((f"{k} ", f"{k}: "))), None)
        what, fix = message, _FIXES.get(key or "", "fix the value")
        if key and message.startswith(f"{key}: ") and "; " in message:  # "<key>: <what>; <fix>"
            what, fix = message[len(key) + 2:].split("; ", 1)
        raise problem(what, fix, (key,) if key else ()) from None
    return {field.name: getattr(config, field.name) for field in config_fields} | {"device": device}


def check_device(device: Any) -> None:
    """``device`` is ``"auto"`` or a torch device string (its availability is not checked)."""
    if not isinstance(device, str):
        raise problem(f"expected a string, got {describe(device)}", _DEVICE_FIX, ("device",))
    if device == "auto":
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise problem(f"unknown device {device!r}", _DEVICE_FIX, ("device",)) from None
