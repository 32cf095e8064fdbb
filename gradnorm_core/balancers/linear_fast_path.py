"""GradNorm's fast path on a shared ``nn.Linear``: each head's gradient at the layer's output,
caught by a hook during the one ordinary backward pass, and the per-task norms at the layer's
weight and bias computed from it and the layer's input (see :class:`~.gradnorm.GradNorm`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _reaches(node: Any, target: Any, limit: int = 1000) -> bool:
    """Whether autograd node ``target`` is an ancestor of ``node`` (searching ``limit`` nodes)."""
    stack, seen = [node], set()
    while stack and len(seen) < limit:
        current = stack.pop()
        if current is target:
            return True
        if current is None or current in seen:
            continue
        seen.add(current)
        stack.extend(parent for parent, _ in current.next_functions)
    return False


class LinearTaskGradients:
    """The fast path's bookkeeping: the shared Linear's input, and each head's gradient at its
    output, caught by a hook during the one ordinary backward pass."""

    def __init__(self, layer: nn.Linear, num_tasks: int) -> None:
        self.layer = layer
        self.num_tasks = num_tasks
        self.layer_input: torch.Tensor | None = None
        self.layer_output: torch.Tensor | None = None
        self.output_version = 0
        self.output_node: Any = None
        self.task_grads: torch.Tensor | None = None
        self.after_backward: Any = None
        self.branched = False
        layer.register_forward_hook(self._record_forward)

    def __deepcopy__(self, memo: dict) -> "LinearTaskGradients":
        # A deep copy of the model copies this hook too; the copy's layer then calls this same
        # object, which ignores it (see the `module is self.layer` check).
        return self

    def _record_forward(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if module is not self.layer or not torch.is_grad_enabled():
            return
        self.layer_input = args[0].detach()
        self.layer_output = output
        self.output_version = output._version
        self.output_node = output.grad_fn
        self.task_grads = None
        self.branched = False

    def branch(self, features: torch.Tensor) -> list[torch.Tensor]:
        if self.layer_output is None:
            raise RuntimeError(
                "GradNorm.branch() saw no forward pass through the shared Linear: call the "
                "trunk on this batch first, then pass its output to branch()"
            )
        during_backward, self.after_backward = self._map_to_output(features)
        # A stride-0 expand aliases `features` T times; unbind's backward stacks the T heads'
        # gradients into one (T, ...) tensor, which the hook below receives in one piece.
        expanded = features.unsqueeze(0).expand(self.num_tasks, *features.shape)

        def keep(grad: torch.Tensor) -> None:
            self.task_grads = grad if during_backward is None else during_backward(grad)

        expanded.register_hook(keep)
        self.branched = True
        return list(expanded.unbind(0))

    def _map_to_output(self, features: torch.Tensor) -> tuple[Any, Any]:
        """How gradients at ``features`` become gradients at the Linear's output ``z``.

        Returns (a map to apply inside the backward pass, one to apply after it); None is the
        identity. ``features`` is ``z`` itself, ``relu(z)`` (a mask, applied afterwards in place,
        when the caught gradient is no one else's), or any other differentiable function of
        ``z`` (one batched vector-Jacobian product, while that part of the graph is alive).
        """
        node = features.grad_fn
        if node is not None and node is self.output_node:
            return None, None
        if node is not None and node.name() == "ReluBackward0" and any(
            parent is self.output_node for parent, _ in node.next_functions
        ):
            mask = (features.detach() > 0).to(features.dtype)
            return None, lambda grad: grad.mul_(mask)
        if self.layer_output._version != self.output_version:
            raise RuntimeError(
                "the shared Linear's output was modified in place before branch(): use an "
                "out-of-place activation (inplace=False) after the shared layer"
            )
        if not _reaches(node, self.output_node):
            raise RuntimeError(
                "branch() was given a tensor that does not depend on the shared Linear's output: "
                "pass the trunk's output computed from that layer in this forward pass"
            )
        output = self.layer_output

        def through_graph(grad: torch.Tensor) -> torch.Tensor:
            (result,) = torch.autograd.grad(
                features, output, grad, retain_graph=True, is_grads_batched=True
            )
            return result

        return through_graph, None

    def check_ready(self) -> None:
        if not self.branched:
            raise RuntimeError(
                "GradNorm.for_linear needs the heads to read gn.branch(features) in this forward "
                "pass: outputs = [head(f) for head, f in zip(heads, gn.branch(features))]"
            )

    def weighted_norms(self, dtype: torch.dtype) -> torch.Tensor:
        """G_i = ||grad_W (w_i L_i)|| for every task, from the caught gradients."""
        if self.task_grads is None:
            raise RuntimeError(
                "no task gradient reached the shared layer: the task losses must be computed "
                "from the heads' outputs on gn.branch(features)"
            )
        grads = self.task_grads
        if self.after_backward is not None:
            grads = self.after_backward(grads)
        grads = grads.to(dtype)
        layer_input = self.layer_input.to(dtype)
        self.task_grads = None
        self.branched = False
        self.layer_output = None
        out_features = grads.shape[-1]
        grads = grads.reshape(self.num_tasks, -1, out_features)
        layer_input = layer_input.reshape(-1, layer_input.shape[-1])
        rows, in_features = layer_input.shape
        norms = []
        if self.layer.weight.requires_grad:
            direct_cost = in_features * rows * out_features
            gram_cost = rows * rows * (in_features / self.num_tasks + out_features)
            if gram_cost < direct_cost:
                gram = layer_input @ layer_input.T
                squares = (torch.matmul(gram, grads) * grads).sum(dim=(1, 2))
                norms.append(squares.clamp_(min=0).sqrt_())
            else:
                products = torch.matmul(layer_input.T, grads)
                norms.append(torch.linalg.vector_norm(products, dim=(1, 2)))
        if self.layer.bias is not None and self.layer.bias.requires_grad:
            norms.append(torch.linalg.vector_norm(grads.sum(dim=1), dim=1))
        if not norms:
            raise RuntimeError("the shared Linear has no parameter that requires grad")
        return norms[0] if len(norms) == 1 else torch.hypot(norms[0], norms[1])
