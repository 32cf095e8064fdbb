"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

import torch

from .log_scales import LearnedLogScales
from .registry import register


@register("uncertainty")
class UncertaintyWeighting(LearnedLogScales):
    r"""Task weights from learnable homoscedastic uncertainties (Kendall, Gal & Cipolla, CVPR 2018).

    Each task has a learnable log-variance :math:`s_i = \log \sigma_i^2` (init 0) and

    .. math::  L_{total} = \sum_{i=1}^{T} \left( e^{-s_i} L_i + s_i \right)

    This is the common simplified form used by most reimplementations: the paper's
    :math:`\frac{1}{2\sigma_i^2} L_i + \log \sigma_i` for regression tasks, with the factors
    :math:`\frac{1}{2}` absorbed into :math:`s_i` and applied to every task alike.

    Per step, with :math:`s` as it was before the step:

    1. the network's gradient is that of :math:`\sum_i e^{-s_i} L_i`;
    2. :math:`s` takes one step of its own optimizer (``"adam"`` or ``"sgd"``, learning rate
       ``lr``) on :math:`\partial L_{total} / \partial s_i = 1 - e^{-s_i} L_i`.

    ``weights`` is :math:`e^{-s}`; ``log_variances`` is :math:`s`. Both are detached copies.

    :math:`s` is updated on the host in float64; ``weights`` and ``log_variances`` follow the
    losses' device and dtype (promoted to at least float32, so half-precision losses get float32
    weights); before the first step they are on the CPU in float32. ``load_state_dict`` refuses
    a state saved with another ``optimizer`` or ``lr``.
    """

    SIGN = -1
    STATE_KEY = "log_variances"

    @property
    def log_variances(self) -> torch.Tensor:
        """The current log variances :math:`s`, a detached 1-D tensor."""
        return self._log_scales()
