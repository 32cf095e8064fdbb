"""The documentation site (mkdocs.yml, docs/) and the README: the site builds with ``--strict``, its
generated parts hold every search type, method, exit status, outcome, result file and public name,
and every example on the pages is run or checked:

- every ```python block of docs/*.md runs, page by page in one namespace (the getting-started
  examples also do what the text around them says);
- every ```yaml block is a valid spec, or a valid part of one (merged into the demo's spec);
- every command of a ```bash block is checked, and none is left unclassified: ``gradnorm-tune``
  commands by the command line's own parser (running them would start sweeps and clusters; the
  walk-through init, check and sweep runs for real in tests/test_scaffold.py), ``make`` targets
  against the Makefile, ``python SCRIPT|-m MODULE ARGS`` by running it with ``--help`` after its
  arguments (argparse checks the arguments before it), and the cluster's own commands (docker,
  ray, ssh, ...) only for the repository files they name, since they need a cluster.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("**/*.md"))
sys.path.insert(0, str(DOCS / "hooks"))

import generated  # noqa: E402  (docs/hooks/generated.py, the build's hook)

#: programs the docs show that need a cluster, Docker or a second machine: only the repository
#: files they name are checked
ELSEWHERE = {"docker", "ray", "ssh", "export", "cp", "kubectl", "openssl", "pip"}


def blocks(path: Path, language: str) -> list[str]:
    """The fenced blocks of ``language`` in a page, less those that include a file (``--8<--``)."""
    found = re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.DOTALL | re.MULTILINE)
    return [block for block in found if not block.lstrip().startswith("--8<--")]


def commands(path: Path) -> list[list[str]]:
    """The commands of a page's bash blocks: continuation lines joined, comments left out."""
    found = []
    for block in blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found.append(words[:words.index("&")] if "&" in words else words)
    return found


# ---------------------------------------------------------------- the site builds, strictly


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built as ``mkdocs build --strict`` builds it (a warning fails it), in seconds."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "WARNING" not in done.stderr, done.stderr[-5000:]
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text()


def test_every_page_of_the_nav_is_built_and_the_readme_links_to_pages_that_exist(site):
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def files(nav):
        for item in nav:
            for value in item.values():
                yield from (files(value) if isinstance(value, list) else [value])

    listed = set(files(config["nav"]))
    assert listed == {str(p.relative_to(DOCS)) for p in PAGES}  # every page in the nav, no orphan
    for name in listed:
        built = site / ("index.html" if name == "index.md" else name.removesuffix(".md") + "/index.html")
        assert built.is_file(), name
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 8 and all((ROOT / link).is_file() for link in links), links


def test_the_spec_reference_lists_every_search_type_and_every_field(site):
    from sweeps import SEARCH_TYPES, SweepSpec

    from gradnorm_core import TrainConfig

    html = page(site, "spec-reference")
    for kind, cls in SEARCH_TYPES.items():
        assert f'id="{kind}"' in html, kind
        for key in cls.model_fields:
            assert f"<code>{key}</code>" in html, (kind, key)
    for key in [*SweepSpec.model_fields, *TrainConfig.__dataclass_fields__]:
        assert f"<td><code>{key}</code></td>" in html, key


def test_the_methods_page_has_every_registered_method_with_its_math(site):
    from gradnorm_core import BALANCERS

    html = page(site, "methods")
    for name, cls in BALANCERS.items():
        assert f'id="{name}"' in html and f"{cls.__name__}" in html, name
    assert html.count("<math") > 20 and ":math:" not in html  # the docstrings' LaTeX, as MathML


def test_exit_statuses_outcomes_plots_and_results_are_generated_from_their_owners(site):
    from sweeps import ExitStatus
    from trainables import Outcome

    html = page(site, "troubleshooting")
    for status in ExitStatus:
        assert re.search(rf"<td[^>]*>{int(status)}</td>\s*<td><code>{status.name}</code>", html), status
    for outcome in Outcome:
        assert f"<code>{outcome.value}</code>" in html, outcome
    assert "<code>best_so_far.png</code>" in page(site, "mlflow")
    bench = page(site, "benchmarks")
    for result in (ROOT / "bench" / "results").glob("*.md"):
        title = result.read_text().splitlines()[0].lstrip("# ")
        assert title in bench, result.name
    for plot in (ROOT / "bench" / "results").glob("*.png"):
        assert (site / "bench" / plot.name).is_file() and f'src="../bench/{plot.name}"' in bench, plot.name
    for script in (ROOT / "bench").glob("*.py"):
        assert f"bench/{script.name}" in bench, script.name


def test_the_api_reference_documents_every_public_name(site):
    import gradnorm_core
    import sweeps
    import trainables

    for package in (gradnorm_core, trainables, sweeps):
        html = page(site, f"reference/{package.__name__}")
        for name in package.__all__:
            assert re.search(rf'id="{package.__name__}\.[\w.]*\b{name}"', html), (package.__name__, name)


def test_a_drifting_docstring_or_an_unknown_marker_stops_the_build(monkeypatch):
    from sweeps import ExitStatus

    verdict = sys.modules[ExitStatus.__module__]
    assert set(generated.docstring_table(verdict.__doc__)) == {int(status) for status in verdict.ExitStatus}
    monkeypatch.setattr(verdict, "__doc__", verdict.__doc__.replace("| 4 |", "| 5 |"))
    with pytest.raises(ValueError, match=r"exit statuses without a meaning .*NO_RESULT"):
        generated.exit_statuses()
    with pytest.raises(ValueError, match="unknown marker 'generated: nothing'"):
        generated.expand("text\n<!-- generated: nothing -->\n", "page.md")


# ---------------------------------------------------------------- every example on the pages


def test_every_python_example_runs():
    ran = 0
    for path in PAGES:
        namespace: dict = {"__name__": "__docs__"}
        for i, block in enumerate(blocks(path, "python")):
            torch.manual_seed(0)
            exec(compile(block, f"{path.relative_to(ROOT)}[{i}]", "exec"), namespace)
            ran += 1
        if path.name == "getting-started.md":  # they do what the text says
            weights = namespace["gn"].weights
            assert weights.shape == (3,) and bool((weights > 0).all())
            torch.testing.assert_close(weights.sum(), torch.tensor(3.0))
            assert namespace["checkpoint"]["step_count"] == 100
            assert namespace["record"].epoch == 2 and namespace["state"]["epoch"] == 2
        if path.name == "methods.md":
            assert all(b.weights.shape == (2,) and bool(torch.isfinite(b.weights).all())
                       for b in namespace["balancers"].values())
    assert ran >= 4


def test_every_yaml_example_is_a_spec_or_part_of_one():
    from sweeps.spec import parse_spec, spec_path

    demo = yaml.safe_load(spec_path("demo").read_text())
    checked = 0
    for path in PAGES:
        for block in blocks(path, "yaml"):
            data = yaml.safe_load(block)
            spec = data if "name" in data else {**demo, **data,
                                                "searches": {**demo["searches"], **data.get("searches", {})}}
            parse_spec(spec, str(path.relative_to(ROOT)), base_dir=ROOT)
            checked += 1
    assert checked >= 1


def parses(argv: list[str]) -> bool:
    """Whether ``python ARGV`` (a script or ``-m MODULE``) takes its arguments: run here as its
    ``__main__`` with ``--help`` after them, which argparse reaches once it has checked the ones
    before it (exit 0), so nothing but the parsing runs."""
    target, args = (argv[1], argv[2:]) if argv[0] == "-m" else (str(ROOT / argv[0]), argv[1:])
    saved = sys.argv
    sys.argv = [target, *args, "--help"]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            runpy.run_module(target, run_name="__main__") if argv[0] == "-m" else runpy.run_path(target, run_name="__main__")
    except SystemExit as exit_:
        return exit_.code in (0, None)
    finally:
        sys.argv = saved
    return False


def check_command(words: list[str], made: set[str]) -> None:
    """One documented command, checked as the module docstring says (``made``: files an earlier
    command of the page creates, e.g. ``init rings``)."""
    from sweeps.cli import parser
    from sweeps.spec import spec_path

    program = words[0]
    if program == "gradnorm-tune":
        try:
            args = parser().parse_args(words[1:])
        except SystemExit as exit_:
            raise AssertionError(f"{' '.join(words)}: the command line refuses it (exit {exit_.code})") from None
        if args.command == "init":
            made.add(f"{args.name}/sweep.yaml")
        spec = getattr(args, "spec", None)
        if spec is not None:
            assert spec in made or (ROOT / spec).exists() or spec_path(spec).exists(), f"{' '.join(words)}: no spec"
    elif program == "make":
        makefile = (ROOT / "Makefile").read_text()
        assert all(re.search(rf"^{target}:", makefile, flags=re.MULTILINE) for target in words[1:]), words
    elif program == "python":
        assert parses(words[1:]), f"{' '.join(words)}: its parser refuses the arguments"
    else:
        assert program in ELSEWHERE, f"{' '.join(words)}: a command this test does not know how to check"
    for word in words[1:]:  # the repository's own files it names exist
        for part in word.split("="):
            if re.match(r"^(docker|examples|bench|sweeps|scripts)/[\w./-]+$", part) and not part.endswith("/.env"):
                assert (ROOT / part).exists(), f"{' '.join(words)}: no {part}"


def test_every_command_is_run_or_checked():
    checked = 0
    for path in [ROOT / "README.md", *PAGES]:
        made: set[str] = set()
        for words in commands(path):
            check_command(words, made)
            checked += 1
    assert checked >= 30


def test_the_command_check_can_fail():
    for words in (["gradnorm-tune", "sweep", "demo", "--no-such-flag"], ["gradnorm-tune", "sweep", "nowhere.yaml"],
                  ["make", "deploy"], ["python", "bench/search_cost.py", "no_such_problem"],
                  ["curl", "http://example.org"], ["docker", "compose", "-f", "docker/nothing.yaml", "up"]):
        with pytest.raises(AssertionError):
            check_command(words, set())


def test_the_links_shown_are_the_lines_a_sweep_prints():
    """The closing lines the README and the MLflow page show are what sweeps.links prints for the
    same store, experiment and run."""
    from sweeps.links import ui_lines

    shown = 0
    for path in (ROOT / "README.md", DOCS / "mlflow.md"):
        for block in blocks(path, "text"):
            lines = block.splitlines()
            if not any(line.startswith("browse it: ") for line in lines):
                continue
            start = next(i for i, line in enumerate(lines) if line.startswith("browse it: "))
            uri = re.search(r"--backend-store-uri (\S+)", lines[start]).group(1)
            experiment, run = re.search(r"/#/experiments/(\d+)/runs/([^/?]+)\?", lines[start + 2]).groups()
            assert lines[start:start + 4] == ui_lines(uri, experiment, run), path.name
            shown += 1
    assert shown == 2
