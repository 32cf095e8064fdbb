"""The README's Python examples run as written, and do what the text around them says."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


OWN_MODEL = "## Your own model in a sweep"


def readme_text() -> str:
    """The README without its own-model section: that one shows the example project's files,
    which tests/test_example_project.py checks."""
    text = README.read_text()
    start = text.find(OWN_MODEL)
    if start < 0:
        return text
    end = text.find("\n## ", start + len(OWN_MODEL))
    return text[:start] + (text[end + 1:] if end >= 0 else "")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", readme_text(), flags=re.DOTALL)


def test_readme_examples_run_and_balance_the_weights():
    blocks = python_blocks()
    assert len(blocks) >= 3, "the README lost its examples"
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(blocks[0], "README.md[plain]", "exec"), namespace)
    weights = namespace["gn"].weights
    assert weights.shape == (3,) and bool((weights > 0).all())
    torch.testing.assert_close(weights.sum(), torch.tensor(3.0))
    # the task with targets 100x larger gets the smallest weight, the smallest task the largest
    assert weights[2] < weights[1] < weights[0]

    exec(compile(blocks[1], "README.md[fast path]", "exec"), namespace)
    assert namespace["checkpoint"]["step_count"] == 100

    exec(compile(blocks[2], "README.md[fit]", "exec"), namespace)
    assert namespace["record"].epoch == 2
    assert namespace["state"]["epoch"] == 2


def test_readme_names_the_two_setup_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.MULTILINE)
    assert re.search(r"^test:", makefile, flags=re.MULTILINE)


def test_readme_spec_example_is_a_valid_spec():
    import yaml

    from sweeps.spec import parse_spec

    (block,) = re.findall(r"```yaml\n(.*?)```", readme_text(), flags=re.DOTALL)
    spec = parse_spec(yaml.safe_load(block), "README.md")
    assert [s.type for s in spec.searches] == ["gradnorm", "static_grid", "equal", "uncertainty", "dwa"]
    assert spec.searches[1].grid_size(spec.num_tasks) == 27
