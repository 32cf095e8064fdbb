"""``gradnorm-tune init NAME``: a new problem and its sweep, from the templates in
``sweeps/templates``: ``NAME/NAME.py`` (a :class:`gradnorm_core.Problem` on made-up data, every
field commented: edit ``TASKS``, ``load_data`` and ``build_model``) and ``NAME/sweep.yaml`` (a
spec shipping that folder as its ``working_dir``, every field commented). Both run as written:
``gradnorm-tune check NAME/sweep.yaml``, then ``gradnorm-tune sweep NAME/sweep.yaml``.

Nothing is overwritten and nothing is half-written: the folder is made complete beside its place,
then renamed into it.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from .state import SweepError

__all__ = ["add_command", "class_name", "write_project"]

TEMPLATES = {"problem.py.tmpl": "{name}.py", "sweep.yaml.tmpl": "sweep.yaml"}


def add_command(commands: Any) -> None:
    """The ``init`` command's parser, under the CLI's ``commands``."""
    init = commands.add_parser("init", help="write a new problem and its sweep spec from a template, every "
                               "field commented")
    init.add_argument("name", help="the problem's name: its module, folder and sweep (a Python name, e.g. rings)")
    init.add_argument("--dir", default=".", help="where the folder NAME goes (default: here)")
    init.set_defaults(run=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    problem, spec = write_project(args.name, args.dir)
    shown = [os.path.relpath(path) if not os.path.isabs(args.dir) else str(path) for path in (problem, spec)]
    print(f"wrote {shown[0]} (the problem: edit TASKS, load_data and build_model) and {shown[1]} (its sweep)")
    print(f"next: gradnorm-tune check {shown[1]}, then gradnorm-tune sweep {shown[1]}")
    return 0


def class_name(name: str) -> str:
    """``my_rings`` -> ``MyRings``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or name


def _check_name(name: str) -> None:
    fix = "give a Python name of letters, digits and '_', e.g. rings"
    if not name.isidentifier() or not name.isascii():
        raise SweepError(f"init: {name!r} is not a Python module name; {fix}")
    if keyword.iskeyword(name) or name.startswith("_"):
        raise SweepError(f"init: {name!r} cannot name a module (a keyword or a private name); {fix}")
    if importlib.util.find_spec(name) is not None:
        raise SweepError(f"init: {name!r} is the name of a module Python already imports (it would hide it or be "
                         f"hidden by it on the trials' path); choose another name, e.g. {name}_problem")


def write_project(name: str, directory: str | Path = ".") -> tuple[Path, Path]:
    """``directory/name/name.py`` and ``directory/name/sweep.yaml`` from the templates; returns
    their paths. A bad name or an existing folder raises a one-line :class:`SweepError` and
    writes nothing."""
    _check_name(name)
    parent = Path(directory).expanduser()
    target = parent / name
    if target.exists():
        raise SweepError(f"init: {target} exists; choose another name or --dir (nothing is overwritten)")
    if not parent.is_dir():
        raise SweepError(f"init: --dir {parent} is not a folder; create it first or give another")
    values = {"{{name}}": name, "{{Class}}": class_name(name)}
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    except OSError as error:
        raise SweepError(f"init: cannot write in {parent} ({error.strerror}); give a folder you can write to") from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(staging, 0o777 & ~umask)  # (mkdtemp makes it private)
        for template, written in TEMPLATES.items():
            text = resources.files("sweeps").joinpath("templates", template).read_text()
            for key, value in values.items():
                text = text.replace(key, value)
            (staging / written.format(name=name)).write_text(text)
        os.rename(staging, target)  # atomic: the folder appears complete, or not at all
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise SweepError(f"init: cannot write {target} ({error.strerror}); check the folder") from None
    return target / f"{name}.py", target / "sweep.yaml"
