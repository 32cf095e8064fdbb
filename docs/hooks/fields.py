"""Tables of a spec's fields, read from the models that validate them: the pydantic models of
:mod:`sweeps.spec` and :mod:`sweeps.searches` and the dataclass :class:`gradnorm_core.TrainConfig`.

A field's row: its key, its type and range (the annotation and the ``gt``/``ge`` bounds), its
default, and what it means: the comment on its line or above it in the class that declares it,
else the fix its ``Fix`` annotation gives for a bad value. Nested mappings (a scheduler, a range)
get their own table, linked from the type. Used by ``generated.py``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

#: Where a spec's YAML is not the model's annotation (the model converts it): (class, field) -> type.
#: A key naming no field stops the build.
SHAPES = {
    ("SweepSpec", "searches"): "mapping: search name -> a [search](#search-types)",
    ("SweepSpec", "training"): "mapping: [training](#training)",
    ("SweepSpec", "runtime_env"): "mapping: Ray's [runtime_env](#runtime_env)",
    ("SweepSpec", "problem"): "mapping: [problem](#problem), or the problem's name alone",
    ("SweepSpec", "storage"): "a path or a URI, or the mapping [storage](#storage)",
}
#: Where a required field is in fact inferred when left out (the model fills it in before checking).
INFERRED = {
    ("GradNormSearch", "search"): "from `alpha`: `optuna` for a range, `grid` for a list",
}
#: The base search type's fields that are a search's identity, not its options.
IDENTITY = ("name", "type")


def object_path(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def api_identifiers(module: types.ModuleType) -> list[str]:
    """mkdocstrings identifiers of a package's public names: through its lazy export table where it
    has one (``_EXPORTS``: name -> submodule, None for a subpackage; ``_MODULES``), else as the
    package's own names (resolved as imports by mkdocstrings)."""
    package, exports, modules = module.__name__, getattr(module, "_EXPORTS", {}), getattr(module, "_MODULES", ())
    identifiers = []
    for name in module.__all__:
        if name in exports and exports[name] is not None:
            identifiers.append(f"{package}.{exports[name]}.{name}")
        else:
            identifiers.append(f"{package}.{name}")
        assert name in exports or name in modules or hasattr(module, name), f"{package}.{name} is not public"
    return identifiers


def _declaring_class(cls: type, name: str) -> type:
    for base in cls.__mro__:
        if name in base.__dict__.get("__annotations__", {}):
            return base
    return cls


def _comment(cls: type, name: str) -> str:
    """The comment on the field's line, else the comment lines right above it (``#:`` or ``#``)."""
    owner = _declaring_class(cls, name)
    try:
        lines = inspect.getsource(owner).splitlines()
    except (OSError, TypeError):
        return ""
    for i, line in enumerate(lines):
        if re.match(rf"^ {{4}}{name}\s*:", line):
            trailing = re.search(r"\s#\s*(.+)$", line)
            if trailing and not trailing.group(1).startswith(("type:", "noqa")):
                return trailing.group(1)
            above = []
            for previous in reversed(lines[:i]):
                if not previous.strip().startswith("#"):
                    break
                above.insert(0, previous.strip().lstrip("#:").strip())
            return " ".join(above)
    return ""


def _fix(metadata: list[Any]) -> str:
    """What the field's ``Fix`` asks for a bad value (or, for that default text, a missing one)."""
    for item in metadata:
        if type(item).__name__ == "Fix":
            for text in (item.text, item.missing):
                try:
                    text = text if isinstance(text, str) or text is None else text({})
                except Exception:  # noqa: BLE001 - a fix that needs the problem's tasks: none shown
                    text = None
                if text and text != "fix the value":
                    return text
    return ""


def _bounds(metadata: list[Any]) -> str:
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    found = []
    for item in metadata:
        for key, sign in words.items():
            if getattr(item, key, None) is not None:
                found.append(f"{sign} {getattr(item, key):g}")
    return ", ".join(found)


def type_text(annotation: Any, nested: list[type]) -> str:
    """How a value of ``annotation`` is written in YAML; a mapping's model is queued in ``nested``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0], nested)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        return " or ".join(type_text(arg, nested) for arg in options)
    if origin is typing.Literal:
        return " or ".join(f"`{value}`" for value in args)
    if origin is list:
        return f"list of ({type_text(args[0], nested)})" if args else "list"
    if origin is dict or annotation is dict:
        return "mapping"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        if annotation not in nested:
            nested.append(annotation)
        return f"mapping: [{annotation.__name__}](#{annotation.__name__.lower()})"
    names = {float: "number", int: "whole number", str: "string", bool: "true or false", typing.Any: "any"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(value: Any) -> str:
    if value is PydanticUndefined or value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, BaseModel):
        return "`{" + ", ".join(f"{key}: {item:g}" if isinstance(item, float) else f"{key}: {item}"
                                for key, item in value.model_dump(exclude_none=True).items()) + "}`"
    return f"`{value}`" if value != {} else "`{}`"


def _rows(cls: type) -> list[tuple[str, Any, str, list[Any]]]:
    """(key, annotation, default, metadata) of each field of a pydantic model or a dataclass."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return [(f.name, hints[f.name], _default(f.default), []) for f in dataclasses.fields(cls)]
    rows = []
    for key, field in cls.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default
        required = field.is_required() and field.default_factory is None
        rows.append((key, field.annotation, "required" if required else _default(default), field.metadata))
    return rows


def fields_table(cls: type, nested: list[type] | None = None, skip: tuple[str, ...] = ()) -> str:
    """The Markdown table of ``cls``'s fields (less ``skip``)."""
    nested = [] if nested is None else nested
    names = {key for key, *_ in _rows(cls)}
    for owner, key in (*SHAPES, *INFERRED):
        if owner == cls.__name__ and key not in names:
            raise ValueError(f"fields.SHAPES or INFERRED names {owner}.{key}, which is no field of it")
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, annotation, default, metadata in _rows(cls):
        if key in skip:
            continue
        shape = SHAPES.get((cls.__name__, key)) or type_text(annotation, nested)
        bounds = _bounds(metadata)
        meaning = docstring_markdown(_comment(cls, key) or _fix(metadata))
        default = INFERRED.get((cls.__name__, key), default)
        lines.append(f"| `{key}` | {shape}{f' ({bounds})' if bounds else ''} | {default} | {meaning} |")
    return "\n".join(lines)


def docstring_markdown(doc: str | None) -> str:
    """A docstring as Markdown: Sphinx roles (``:class:`~a.b.C```) as plain code (```C```)."""
    text = inspect.cleandoc(doc or "")
    return re.sub(r":(?:class|func|meth|mod|data|attr|exc):`~?\.*(?:\w+\.)*(\w+)`", r"``\1``", text)


def nested_section(nested: list[type], done: set[type]) -> str:
    """The tables of the nested mappings queued so far (and of those their tables queue)."""
    parts = []
    while any(model not in done for model in nested):
        model = next(model for model in nested if model not in done)
        done.add(model)
        parts.append(f"### {model.__name__} {{ #{model.__name__.lower()} }}\n\n{docstring_markdown(model.__doc__)}\n\n"
                     f"{fields_table(model, nested)}\n")
    return "\n".join(parts)


def _model_of(model: type, key: str) -> type:
    """The pydantic model a field of ``model`` holds (a union's member, for an optional one)."""
    annotation = model.model_fields[key].annotation
    return next(arg for arg in (annotation, *typing.get_args(annotation))
                if inspect.isclass(arg) and issubclass(arg, BaseModel))


def spec_section() -> str:
    """The top level of a spec (``sweeps.SweepSpec``), and its problem, training, resources and
    storage."""
    from gradnorm_core import TrainConfig
    from sweeps import SweepSpec

    nested: list[type] = []
    parts = ["### The top level { #top-level }", fields_table(SweepSpec, nested)]
    for key in ("problem", "resources"):
        model = _model_of(SweepSpec, key)
        nested.remove(model) if model in nested else None
        parts += [f"### {key} {{ #{key} }}", docstring_markdown(model.__doc__), fields_table(model, nested)]
    parts += ["### training { #training }", docstring_markdown(TrainConfig.__doc__), fields_table(TrainConfig)]
    storage = _model_of(SweepSpec, "storage")
    parts += ["### storage { #storage }", docstring_markdown(_module_doc(storage)), fields_table(storage, nested)]
    return "\n\n".join(parts) + "\n\n" + nested_section(nested, set())


def _module_doc(cls: type) -> str:
    return importlib.import_module(cls.__module__).__doc__ or ""


def search_types_section() -> str:
    """The options every search type takes, then each type of ``sweeps.SEARCH_TYPES``: what it
    searches, the method its trials train, its own options; then the nested mappings."""
    from sweeps import SEARCH_TYPES

    base = next(iter(SEARCH_TYPES.values())).__mro__
    search_type = next(cls for cls in base if cls.__name__ == "SearchType")
    nested: list[type] = []
    parts = ["### Options of every search { #search-options }",
             fields_table(search_type, nested, skip=IDENTITY)]
    shared = set(search_type.model_fields)
    for kind, cls in SEARCH_TYPES.items():
        own = tuple(key for key in shared if _declaring_class(cls, key) is search_type)
        facts = [f"trains method [`{cls.method}`](methods.md#{cls.method})"]
        if cls.recommends_static:
            facts.append("can give the recommended static weights")
        if cls.reference:
            facts.append("is the single-task reference of Δm%, not a competitor")
        table = fields_table(cls, nested, skip=IDENTITY + own)
        parts += [f"### `{kind}` {{ #{kind} }}", docstring_markdown(cls.__doc__),
                  f"Its trials: {'; '.join(facts)}.",
                  table if table.count("\n") > 1 else "No options of its own."]
    return "\n\n".join(parts) + "\n\n## Nested mappings\n\n" + nested_section(nested, set())
