"""The README: read in five minutes (at most 200 lines), the two set-up commands verbatim and real
Makefile targets, the demo's output as the demo prints it, and links into the documentation site.

Its commands are checked with the site's (tests/test_docs.py); its own-model walk-through runs for
real in tests/test_scaffold.py.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_is_read_in_five_minutes():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, len(lines)
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## What it answers", "## Set-up", "## Your own model in a sweep", "## Where to go next",
                        "## License"]


def test_readme_names_the_two_setup_commands():
    text = README.read_text()
    (setup,) = re.findall(r"## Set-up\n.*?```bash\n(.*?)```", text, flags=re.DOTALL)
    assert [line.split("#")[0].strip() for line in setup.splitlines()] == ["make demo", "make test"]
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^demo: install\n\t\$\(VENV\)/bin/gradnorm-tune sweep demo$", makefile, flags=re.MULTILINE)
    assert re.search(r"^test:", makefile, flags=re.MULTILINE)


def test_the_demo_output_shown_is_the_demo_spec_and_the_verdict_format():
    """The table rows are the demo spec's searches, and the closing lines are the ones a sweep
    prints (the verdict line of sweeps.verdict, the links of sweeps.links)."""
    from sweeps.spec import load_spec, spec_path

    text = README.read_text()
    (section,) = re.findall(r"## What it answers\n(.*?)\n## ", text, flags=re.DOTALL)
    shown = "".join(re.findall(r"```text\n(.*?)```", section, flags=re.DOTALL))  # the table, then the last lines
    rows = [line.split("|")[1].strip() for line in shown.splitlines() if line.startswith("| ")][1:]
    spec = load_spec(spec_path("demo"))
    assert rows == [s.name for s in spec.searches] + ["recommended_static"]
    assert f"sweep complete: {spec.trial_count()} of {spec.trial_count()} trials ended as planned (exit 0)" in shown
    assert "?workflowType=machine_learning" in shown
