"""GradNorm's per-task gradient norms n_i = ||grad_W L_i||_2 on its plain path (any set of leaf
tensors W), the checks that W is the shared layer every task reaches, and the average of the
losses and norms over DDP processes (see :class:`~.gradnorm.GradNorm`; the fast path on a shared
``nn.Linear`` is :mod:`.linear_fast_path`)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def check_shared_params(shared_params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """``shared_params`` as a non-empty list of leaf tensors that require grad, or a one-line error."""
    if isinstance(shared_params, torch.Tensor):
        shared_params = [shared_params]
    params = list(shared_params)
    if not params:
        raise ValueError(
            "shared_params is empty: pass the parameters of the last shared layer, "
            "e.g. model.trunk[-1].parameters()"
        )
    for index, param in enumerate(params):
        if not isinstance(param, torch.Tensor):
            raise TypeError(f"shared_params[{index}] is a {type(param).__name__}, not a tensor")
        if not param.is_leaf or not param.requires_grad:
            raise ValueError(
                f"shared_params[{index}] must be a leaf tensor that requires grad (a model "
                f"parameter), not an intermediate activation"
            )
    return params


def task_gradient_norms(losses: torch.Tensor, shared_params: list[torch.Tensor]) -> torch.Tensor:
    """n_i = ||grad_W L_i||_2, one norm over all tensors of W, from one ``autograd.grad`` call per
    task (the graph is kept for the network's backward). A task that does not reach W, or a
    tensor of W that no task uses, is a one-line ValueError."""
    squares = []
    used = [False] * len(shared_params)
    for task in range(losses.shape[0]):
        grads = torch.autograd.grad(losses[task], shared_params, retain_graph=True, allow_unused=True)
        if all(g is None for g in grads):
            raise ValueError(
                f"losses[{task}] does not depend on shared_params: pass the parameters of "
                f"the last layer that all tasks share"
            )
        total = losses.new_zeros(())
        for index, grad in enumerate(grads):
            if grad is not None:
                used[index] = True
                total = total + grad.to(total.dtype).square().sum()
        squares.append(total)
    if not all(used):
        unused = [i for i, u in enumerate(used) if not u]
        raise ValueError(
            f"shared_params[{unused[0]}] is not used by any task loss: pass only the "
            f"parameters of the last layer that all tasks share"
        )
    return torch.stack(squares).sqrt()


def check_every_task_reaches_w(norms: torch.Tensor) -> None:
    """A one-line ValueError for a task whose gradient at W is zero (checked on the first step)."""
    dead = (norms == 0).nonzero()
    if dead.numel():
        task = int(dead[0, 0])
        raise ValueError(
            f"losses[{task}] has a zero gradient at the shared parameters on the first step: "
            f"W must be the last layer that every task's loss depends on"
        )


def average_over_processes(*vectors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``vectors`` averaged over the processes of ``torch.distributed`` (as float64) when it runs
    more than one, else as they are."""
    distributed = torch.distributed
    if not (distributed.is_available() and distributed.is_initialized()):
        return vectors
    world = distributed.get_world_size()
    if world == 1:
        return vectors
    packed = torch.stack([v.to(torch.float64) for v in vectors])
    distributed.all_reduce(packed)
    return tuple((packed / world).unbind(0))
