"""GradNorm's shared layer W, named by its module path in the model, and the GradNorm built on it."""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from ..problems.models import accepts_branch


def resolve_shared_layer(model: nn.Module, path: str | None) -> nn.Module:
    """The module ``model.get_submodule(path)``; with ``path`` None, ``model.last_shared_layer``.

    A path naming no module raises a one-line ValueError listing the closest module paths
    (by ``difflib`` similarity); so does None for a model without ``last_shared_layer``, and a
    module without a trainable parameter.
    """
    names = [name for name, _ in model.named_modules() if name]
    listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    if path is None:
        try:
            return model.last_shared_layer
        except AttributeError:
            pass
        raise ValueError(
            f"shared_layer: {type(model).__name__} has no last_shared_layer; give shared_layer, "
            f"the module path of GradNorm's W in the model (one of: {listed or 'none'})"
        )
    if not isinstance(path, str) or not path:
        raise ValueError(f"shared_layer: must be a module path such as 'trunk.2', got {path!r}")
    modules = dict(model.named_modules())
    module = modules.get(path)
    if module is None:
        closest = difflib.get_close_matches(path, names, n=5, cutoff=0.0)
        raise ValueError(
            f"shared_layer: no module {path!r} in the model; closest: {', '.join(closest) or 'none'}"
        )
    if not any(p.requires_grad for p in module.parameters()):
        raise ValueError(
            f"shared_layer: module {path!r} ({type(module).__name__}) has no trainable "
            f"parameter; name a layer with weights (modules: {listed})"
        )
    return module


def takes_fast_path(model: nn.Module, module: nn.Module) -> bool:
    """Whether GradNorm with W = ``module`` takes the single-backward fast path
    (:meth:`GradNorm.for_linear`): W is an ``nn.Linear``, the model's forward takes ``branch``
    (:class:`~gradnorm_core.problems.MultiHeadNet`) and, for a model with a ``trunk``, W lies in
    that trunk (``branch`` splits the trunk's output). Otherwise the exact plain path, for any
    module in any model (a Conv2d, an attention block, ...)."""
    trunk = getattr(model, "trunk", model)
    in_trunk = isinstance(trunk, nn.Module) and any(m is module for m in trunk.modules())
    return isinstance(module, nn.Linear) and accepts_branch(model) and in_trunk


def build_on_shared_layer(cls: Any, num_tasks: int, model: nn.Module | None = None, shared_layer: str | None = None,
                          **options: Any) -> Any:
    """``GradNorm.build``: GradNorm (``cls``) with W the module of ``model`` at ``shared_layer``
    (:func:`resolve_shared_layer`), on the fast path (``cls.for_linear``) where
    :func:`takes_fast_path` says it applies, else the exact plain path."""
    module = resolve_shared_layer(model, shared_layer)
    if takes_fast_path(model, module):
        return cls.for_linear(module, num_tasks, **options)
    return cls(module.parameters(), num_tasks, **options)
