"""sweeps.report stands in layers: each module imports only the layers below it, and only the
reading of the record in summaries reaches MLflow, through trainables; no module imports Ray or
pyplot."""

from __future__ import annotations

import ast
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "sweeps" / "report"
LAYERS = ["summaries", "primaries", "selection", "costs", "delta", "fronts", "hypervolume", "table", "markdown", "answer",
          "figures"]
#: the modules that read the record (and, for an older record, the problem), when called
READERS = ("summaries.py", "primaries.py")


def imports(path: Path) -> list[tuple[ast.ImportFrom | ast.Import, bool]]:
    """Every import of the module, and whether it sits at module level (not in a function)."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    return [(node, id(node) in top) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    return [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]


def test_each_report_module_uses_only_the_layers_below_it():
    for path in sorted(REPORT.rglob("*.py")):
        parts = path.relative_to(REPORT).parts
        if parts == ("__init__.py",):
            continue  # the package's exports
        layer = LAYERS.index(parts[0].removesuffix(".py"))
        for node, _ in imports(path):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            if len(parts) > 1 and node.level == 1:
                continue  # within figures: its shared helpers and its plots
            target = (node.module or "").split(".")[0]
            if node.level == (2 if len(parts) > 1 else 1) + 1:
                assert path.name in READERS, f"{path}: only the reading reaches outside the report"
                continue
            assert LAYERS.index(target) < layer, f"{'/'.join(parts)} imports {target}, not a layer below it"


#: what summaries may import from trainables at module level: the outcome and metric vocabularies (pure Python)
VOCABULARY = {"Outcome", "metric_names", "run_names"}


def test_the_report_reads_mlflow_only_through_trainables_and_never_imports_ray_or_pyplot():
    outside = ("ray", "mlflow", "trainables", "torch")
    for path in sorted(REPORT.rglob("*.py")):
        for node, top_level in imports(path):
            if (path.name == "summaries.py" and isinstance(node, ast.ImportFrom) and node.module == "trainables"
                    and {alias.name for alias in node.names} <= VOCABULARY):
                continue
            for name in imported(node):
                assert name != "matplotlib.pyplot", path.name
                if name.split(".")[0] in outside or (isinstance(node, ast.ImportFrom) and node.level > 1
                                                     and path.name in READERS):
                    # the reading of the record, in summaries alone, when called (or for types)
                    assert path.name in READERS and not top_level, f"{path.name} imports {name}"
                    assert name.split(".")[0] != "ray", f"{path.name} imports {name}"
    assert "MlflowClient(" not in "".join(p.read_text() for p in REPORT.rglob("*.py"))


def test_importing_the_report_loads_no_ray_mlflow_torch_or_pyplot():
    import subprocess
    import sys

    code = ("import sys, sweeps.report; heavy = [m for m in ('ray', 'mlflow', 'torch', 'matplotlib.pyplot') "
            "if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=REPORT.parent.parent)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
