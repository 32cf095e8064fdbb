"""IMTL-G, the gradient balance of Impartial Multi-task Learning (Liu et al., ICLR 2021), on
TorchJD's ``IMTLGWeighting``."""

from __future__ import annotations

from typing import Any

from .jacobian import JacobianBalancer
from .registry import register


@register("imtl_g")
class IMTLG(JacobianBalancer):
    r"""IMTL-G alone (Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial Multi-task
    Learning", ICLR 2021), in the form of Quinton & Rey ("Jacobian Descent for Multi-Objective
    Optimization", 2024; TorchJD's ``IMTLGWeighting``): the combination :math:`g = \sum_t w_t J_t`,
    :math:`\sum_t w_t = 1`, whose projections on every unit task gradient
    :math:`u_t = J_t / \lVert J_t \rVert` are equal. From the Gramian :math:`G = J J^\top`,

    .. math::  v = G^{+} d, \quad d_t = \sqrt{G_{tt}} = \lVert J_t \rVert, \qquad w = v / \textstyle\sum_t v_t

    (:math:`G^+` the pseudo-inverse, so linearly dependent gradients are allowed; :math:`w = 0` when
    :math:`\sum_t v_t` is 0). With independent gradients this is the paper's closed form
    :math:`\alpha_{2:T} = g_1 U^\top (D U^\top)^{-1}`. The weights may be negative.

    ``jacobian="parameters"`` (default) takes :math:`J` on the trunk's parameters (T backward passes
    per step, batched); ``"representation"`` on the trunk's output, as the paper and LibMTL do (one
    backward pass). :class:`~.imtl.IMTL` is the paper's hybrid (IMTL-G at the representation on
    IMTL-L's learned loss scales). No options; everything else is
    :class:`~.jacobian.JacobianBalancer`'s.
    """

    def _gramian_weighting(self) -> Any:
        from torchjd.aggregation import IMTLGWeighting

        return IMTLGWeighting()
