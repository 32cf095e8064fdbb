"""``python -m gradnorm_core``: the comparison table, and one-line errors with exit code 2."""

from __future__ import annotations

import re

import pytest

from gradnorm_core.__main__ import main, parse_method


def test_compares_methods_and_prints_a_sorted_table(capsys):
    code = main(["--problem", "multidigits", "--epochs", "1", "--batch-size", "128",
                 "gradnorm:alpha=1.5", "equal", "dwa"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if re.match(r"^(gradnorm|equal|dwa)\b", line)]
    assert {row.split()[0].split("(")[0] for row in rows} == {"gradnorm", "equal", "dwa"}
    test_scores = [float(row.split()[2]) for row in rows]
    assert test_scores == sorted(test_scores)


@pytest.mark.parametrize("argv,message", [
    (["bogus"], "unknown method 'bogus'"),
    (["gradnorm:alpha=-1"], "alpha must be a finite number >= 0"),
    (["gradnorm:alpha"], "must look like key=value"),
    (["gradnorm:alpha=big"], "method option 'alpha' must be a number"),
    (["--problem", "nope"], "unknown problem 'nope'"),
    (["--epochs", "0"], "epochs must be an integer >= 1"),
])
def test_bad_input_is_one_line_and_exit_code_2(capsys, argv, message):
    assert main(argv + ["--epochs", "1"] if "--epochs" not in argv else argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1


def test_parse_method():
    assert parse_method("gradnorm:alpha=0.12,lr=0.05") == ("gradnorm", {"alpha": 0.12, "lr": 0.05})
    assert parse_method("equal") == ("equal", {})
    assert parse_method("nash_mtl:jacobian=representation,update_weights_every=2,max_norm=0.5") == (
        "nash_mtl", {"jacobian": "representation", "update_weights_every": 2, "max_norm": 0.5})
