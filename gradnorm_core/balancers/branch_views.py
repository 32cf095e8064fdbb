"""Each head's own view of the trunk's output: how a balancer that weighs the task gradients at the
trunk's output :math:`z` (IMTL, and the gradient methods' ``jacobian="representation"`` form) gets
every :math:`G_t = \\partial L_t / \\partial z` from one backward pass through the heads.

``branch(z)`` hands head :math:`t` a detached copy :math:`z_t` of :math:`z` that requires grad;
``backward(losses)`` then reads :math:`G_t` off :math:`z_t`'s gradient (heads only reach their own
copy) and writes the combined gradient into the trunk through :math:`z` itself."""

from __future__ import annotations

import torch

__all__ = ["BranchViews"]


class BranchViews:
    """Mixin for a balancer with ``num_tasks``: :meth:`branch` for the model's forward pass
    (``MultiHeadNet``: ``model(x, branch=balancer.branch)``), :meth:`take_views` once in its backward."""

    num_tasks: int
    _features: torch.Tensor | None = None
    _views: list[torch.Tensor] | None = None

    def branch(self, features: torch.Tensor) -> list[torch.Tensor]:
        """One detached view of the trunk's output ``features`` per head (``[features] * T``
        outside autograd, e.g. in evaluation)."""
        if not torch.is_grad_enabled():
            return [features] * self.num_tasks
        self._features = features
        self._views = [features.detach().requires_grad_() for _ in range(self.num_tasks)]
        return list(self._views)

    def take_views(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The trunk's output and the heads' views of it from this forward pass, handed out once;
        a clear error when the heads did not read :meth:`branch`."""
        if self._views is None or self._features is None:
            name = type(self).__name__
            raise RuntimeError(
                f"{name} needs the heads to read balancer.branch(features) in this forward pass: "
                "outputs = [head(f) for head, f in zip(heads, balancer.branch(trunk(x)))] "
                "(MultiHeadNet: model(x, branch=balancer.branch))")
        features, views = self._features, self._views
        self._features = self._views = None
        return features, views
