"""Reading a spec file: YAML where ``2e-3`` is a float (as in YAML 1.2) and a key given twice in
one mapping is an error rather than silently overriding the first. Every problem with the file
itself (missing, unreadable, bad YAML) is a one-line :class:`SpecError`."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ..validation import SpecError, one_line

__all__ = ["parse_yaml", "read_spec_file"]


def read_spec_file(path: str | Path) -> Any:
    """The parsed YAML of the spec file at ``path`` (not validated)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{source}: file: not found; check the path (specs ship in sweeps/specs/)"
        ) from None
    except IsADirectoryError:
        raise SpecError(f"{source}: file: is a directory; give the path of a .yaml spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError(
            f"{source}: file: cannot be read ({one_line(reason)}); "
            "check its permissions and that it is a UTF-8 text file"
        ) from None
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> Any:
    """``text`` parsed as YAML; errors name ``source`` and the line."""
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        if (exc.problem or "").startswith("duplicate key"):
            raise SpecError(f"{source}: {where}: {one_line(what)} in a mapping; give each key once") from None
        raise SpecError(
            f"{source}: {where}: YAML syntax error: {one_line(what)}; "
            "fix the YAML there (indentation, ':' after keys, matching quotes and brackets)"
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: file: YAML error: {one_line(str(exc))}; fix the YAML") from None


@functools.lru_cache(maxsize=1)
def _loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that reads 1e-3 as a float and refuses duplicate keys."""

        def construct_mapping(self, node, deep=False):  # type: ignore[override]
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        duplicate = key in seen
                    except TypeError:  # unhashable: let the base class report it
                        continue
                    if duplicate:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.yaml_implicit_resolvers = {
        key: list(value) for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return Loader
