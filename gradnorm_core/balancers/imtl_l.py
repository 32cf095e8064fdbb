"""IMTL-L, the loss balance of Impartial Multi-task Learning (Liu et al., ICLR 2021)."""

from __future__ import annotations

import torch

from .log_scales import LearnedLogScales
from .registry import register


@register("imtl_l")
class IMTLL(LearnedLogScales):
    r"""Task weights :math:`e^{s_i}` from learnable loss scales (IMTL-L; Liu et al., "Towards
    Impartial Multi-task Learning", ICLR 2021).

    Each task has a learnable log-scale :math:`s_i` (init 0) and

    .. math::  L_{total} = \sum_{i=1}^{T} \left( e^{s_i} L_i - s_i \right)

    Per step, with :math:`s` as it was before the step:

    1. the network's gradient is that of :math:`\sum_i e^{s_i} L_i` (the :math:`-s_i` term does
       not depend on the network);
    2. :math:`s` takes one step of its own optimizer (``"adam"`` or ``"sgd"``, learning rate
       ``lr``) on :math:`\partial L_{total} / \partial s_i = e^{s_i} L_i - 1`.

    For a fixed :math:`L_i > 0` the minimiser is :math:`e^{s_i} = 1 / L_i`: the scaled losses
    are driven to 1 (the paper's "impartial" losses), and at that point the network's gradient
    is :math:`\sum_i \nabla L_i / L_i`, that of :class:`~.scale_invariant.ScaleInvariant`.

    **The same dynamics as uncertainty weighting without its 1/2.** With :math:`u = -s` the loss
    is :math:`\sum_i e^{-u_i} L_i + u_i`, twice Kendall et al.'s regression form
    :math:`\tfrac12 e^{-u_i} L_i + \tfrac12 u_i` of :class:`~.uncertainty.UncertaintyWeighting`:
    the same minimiser, a gradient in :math:`u` twice as large and network weights twice as
    large. With SGD, IMTL-L at ``lr`` gives exactly :math:`s = -u` of uncertainty weighting
    (all tasks regression) at ``2 lr``, with twice its weights; with Adam, which ignores the
    scale of a gradient, :math:`s = -u` at the same ``lr`` up to Adam's epsilon (tested). It is
    kept as IMTL's loss-balance half alone (the ablation the IMTL paper reports); the hybrid
    :class:`~.imtl.IMTL` combines it with IMTL-G.

    ``weights`` is :math:`e^{s}` (the weights the next step applies, so the training loop,
    which reads them before each step, records exactly the weights used); ``log_scales`` is
    :math:`s`. Both are detached copies.

    Choices the paper leaves open, and where public code differs:

    - The paper learns :math:`s` by gradient descent alongside the network, and LibMTL's
      ``IMTL`` makes ``loss_scale`` an ``nn.Parameter`` of the model, so the network's
      optimizer (its kind, learning rate and weight decay) updates it. Here, as for uncertainty weighting in this
      package, :math:`s` has its own optimizer, so it does not depend on the training
      settings and can be tuned alone. (One LibMTL version makes ``loss_scale`` a plain tensor
      that no optimizer holds, so :math:`s` stays 0 there.) LibMTL's ``IMTL`` is the hybrid
      IMTL-L + IMTL-G (here :class:`~.imtl.IMTL`); FAMO's ``imtl`` is IMTL-G alone. This class is
      IMTL-L alone.
    - Default ``lr`` 0.025 with Adam, the default of uncertainty weighting; with Adam the step in
      :math:`s` is about ``lr`` whatever the loss scale.
    - Any finite loss is accepted. For :math:`L_i \le 0` the
      objective has no minimiser in :math:`s_i`: :math:`s_i` rises every step. Use losses
      :math:`\ge 0` (MSE, cross-entropy), not e.g. a Gaussian NLL that can be negative.
    - :math:`s` is updated on the host in float64; ``weights`` and ``log_scales`` follow the
      losses' device and dtype (promoted to at least float32); before the first step they are
      on the CPU in float32. ``load_state_dict`` refuses a state saved with another
      ``optimizer`` or ``lr``.
    """

    SIGN = 1
    STATE_KEY = "log_scales"

    @property
    def log_scales(self) -> torch.Tensor:
        """The current log scales :math:`s`, a detached 1-D tensor."""
        return self._log_scales()
