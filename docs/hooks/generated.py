"""The parts of the documentation site that the code owns, generated at build time (an MkDocs hook,
``hooks:`` in mkdocs.yml), so that a page cannot drift from the code it describes.

A page asks for a part with a marker line ``<!-- generated: WHAT [ARGUMENT] -->``:

- ``spec`` the spec's mappings and fields, from the pydantic models of :mod:`sweeps.spec` and the
  training settings of :class:`gradnorm_core.TrainConfig`; ``search-types`` every search type of
  ``sweeps.SEARCH_TYPES`` with its own options (see :mod:`fields`);
- ``methods`` every balancer of the registry (``gradnorm_core.BALANCERS``), its options and its
  docstring and source through mkdocstrings;
- ``exit-statuses`` the exit statuses (``ExitStatus``) with their meanings, from the table of its
  module's docstring; ``outcomes`` the trial outcomes (``trainables.Outcome``);
- ``bench-results`` every ``bench/results/*.md``, its headings one level down, with its plots;
- ``api PACKAGE`` the public names of a package (its ``__all__``) through mkdocstrings.

A name without a meaning, or a marker nobody knows, stops the build (an exception, which
``mkdocs build`` reports as an error).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fields import api_identifiers, docstring_markdown, object_path, search_types_section, spec_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
MARKER = re.compile(r"^<!-- generated: ([a-z-]+)(?: ([\w.]+))? -->$", flags=re.MULTILINE)


def _module_of(obj: object):
    return sys.modules[obj.__module__]


def docstring_table(doc: str) -> dict[int, str]:
    """``| 0 | meaning |`` rows of a docstring's Markdown table -> {status: meaning}."""
    return {int(status): meaning
            for status, meaning in re.findall(r"^\|\s*(\d+)\s*\|\s*(.+?)\s*\|$", doc, flags=re.MULTILINE)}


def exit_statuses() -> str:
    from sweeps import ExitStatus

    meanings = docstring_table(_module_of(ExitStatus).__doc__ or "")
    missing = [status.name for status in ExitStatus if int(status) not in meanings]
    if missing:
        raise ValueError(f"exit statuses without a meaning in {ExitStatus.__module__}'s docstring table: {missing}")
    rows = [f"| {int(status)} | `{status.name}` | {meanings[int(status)]} |" for status in ExitStatus]
    return "\n".join(["| exit | `ExitStatus` | meaning |", "|---:|---|---|", *rows])


def outcomes() -> str:
    from trainables import Outcome

    meanings = docstring_bullets(_module_of(Outcome).__doc__ or "")
    missing = [outcome.value for outcome in Outcome if outcome.value not in meanings]
    if missing:
        raise ValueError(f"trial outcomes without a meaning in {Outcome.__module__}'s docstring: {missing}")
    rows = [f"| `{o.value}` | {o.run_status} | {'yes' if o.selectable else 'no'} | {docstring_markdown(meanings[o.value])} |"
            for o in Outcome]
    return "\n".join(["| outcome | MLflow run status | counts in the results | what happened |",
                      "|---|---|---|---|", *rows])


def docstring_bullets(doc: str) -> dict[str, str]:
    """``- ``name``: meaning`` bullets of a docstring -> {name: meaning}, each on one line."""
    found = re.findall(r"^- ``([\w<>.]+)``: (.+?)(?=\n- |\n\n|\Z)", doc, flags=re.MULTILINE | re.DOTALL)
    return {name: " ".join(meaning.split()) for name, meaning in found}


def plots() -> str:
    from sweeps.report import comparison_figures

    bullets = docstring_bullets(_module_of(comparison_figures).__doc__ or "")
    if not bullets:
        raise ValueError(f"no plots listed in {comparison_figures.__module__}'s docstring")
    return "\n".join(f"- `{name}`: {docstring_markdown(meaning)}" for name, meaning in bullets.items())


def methods() -> str:
    """The registry's table, then each method's docstring (its math) and source."""
    import gradnorm_core
    from gradnorm_core import BALANCERS

    rows, sections = [], []
    for name, cls in BALANCERS.items():
        signature = inspect.signature(cls.__init__).parameters
        options = ", ".join(
            f"`{key}`" if signature[key].default is inspect.Parameter.empty else f"`{key}={signature[key].default!r}`"
            for key in gradnorm_core.METHODS[name])
        public = getattr(gradnorm_core, cls.__name__, None) is cls
        where = f"gradnorm_core.{cls.__name__}" if public else object_path(cls)
        rows.append(f"| `{name}` | [`{cls.__name__}`](#{name}) | {options or '-'} |")
        sections.append(f"### `{name}` {{ #{name} }}\n\n::: {where}\n    options:\n      members: false\n"
                        f"      show_root_heading: false\n      show_root_toc_entry: false\n      show_source: true\n")
    table = "\n".join(["| registry name | class | options (default) |", "|---|---|---|", *rows])
    return table + "\n\n" + "\n".join(sections)


def bench_results() -> str:
    """Every result file, its headings one level down, and its plots (copied by :func:`on_files`)."""
    parts = []
    for table in sorted(RESULTS.glob("*.md")):
        text = re.sub(r"^(#+) ", r"#\1 ", table.read_text(), flags=re.MULTILINE)
        plots = "\n".join(f"![{plot.stem}](bench/{plot.name})" for plot in sorted(RESULTS.glob(f"{table.stem}_*.png")))
        parts.append(f"{text.rstrip()}\n\n{plots}\n" if plots else text)
    if not parts:
        raise ValueError(f"no result tables in {RESULTS}")
    return "\n".join(parts)


def bench_scripts() -> str:
    """Each benchmark script of bench/, by the first paragraph of its docstring."""
    import ast

    rows = []
    for script in sorted((ROOT / "bench").glob("*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        if not doc:
            raise ValueError(f"{script} has no docstring to say what it measures")
        rows.append(f"- `bench/{script.name}`: {docstring_markdown(' '.join(doc.split(chr(10) * 2)[0].split()))}")
    return "\n".join(rows)


def api(package: str) -> str:
    module = importlib.import_module(package)
    blocks = [f"::: {package}\n    options:\n      members: false\n      show_root_heading: false\n"]
    blocks += [f"::: {identifier}\n" for identifier in api_identifiers(module)]
    return "\n".join(blocks)


GENERATORS = {
    "spec": lambda _: spec_section(),
    "search-types": lambda _: search_types_section(),
    "methods": lambda _: methods(),
    "exit-statuses": lambda _: exit_statuses(),
    "outcomes": lambda _: outcomes(),
    "plots": lambda _: plots(),
    "bench-results": lambda _: bench_results(),
    "bench-scripts": lambda _: bench_scripts(),
    "api": api,
}


def expand(markdown: str, where: str = "<page>") -> str:
    """The page with every marker replaced by what it asks for."""
    def generate(match: re.Match) -> str:
        what, argument = match.groups()
        if what not in GENERATORS:
            raise ValueError(f"{where}: unknown marker 'generated: {what}'; known: {', '.join(GENERATORS)}")
        return GENERATORS[what](argument)

    return MARKER.sub(generate, markdown)


# -- the MkDocs hooks --------------------------------------------------------------------------------


def on_files(files, config):
    """The benchmark plots, from bench/results/ into the site's bench/."""
    for plot in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"bench/{plot.name}", abs_src_path=str(plot)))
    return files


def on_page_markdown(markdown, page, config, files):
    return expand(markdown, page.file.src_uri)


ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):(<code>)~?\.*(?:\w+\.)*")


def on_page_content(html, page, config, files):
    """Sphinx roles in the docstrings (``:class:`~a.b.C```) read as plain code (``C``)."""
    return ROLE.sub(r"\1", html)
