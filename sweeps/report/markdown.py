"""The cost table as Markdown, padded so that it also reads as plain text in a terminal: a headline
table narrow enough for MLflow's artifact preview (at most :data:`HEADLINE_COLUMNS` columns), and
a second table with the rest (every unit of cost, the per-task test metrics, the grid's front).

Pure functions over the rows of :func:`.table.cost_rows`. Costs in the headline are in one unit,
the sweep's stable one (:func:`.costs.stable_unit`), each with its share of the grid's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .costs import PREFERRED, reach_key
from .summaries import COST_UNITS, short_label
from .table import NO_RESULT, cost_key, full_grid_key, with_source_key

__all__ = ["HEADLINE_COLUMNS", "UNIT_HEADERS", "details_table", "format_table", "headline_table", "number", "percent",
           "trials_cell"]

#: the most columns the headline table has: what MLflow's preview pane (about 850 px) shows uncut
HEADLINE_COLUMNS = 9
#: a cost column's header in each unit
UNIT_HEADERS = {"compute": "compute s", "cpu": "CPU s", "gpu": "GPU s", "samples": "samples"}
#: the longest best configuration the headline shows (shortened: :func:`.summaries.short_label`)
CONFIG_WIDTH = 48
Column = tuple[str, bool, Callable[[dict], str]]  # (header, right-aligned, the cell of a row)


def percent(fraction: float | None) -> str:
    """A fraction as a percentage with two significant digits at least: ``31%``, ``4.5%``,
    ``0.0063%``; ``-`` for none."""
    if fraction is None:
        return "-"
    value = 100.0 * float(fraction)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 10:
        return f"{value:,.0f}%"
    if abs(value) >= 1:
        return f"{value:.1f}%"
    return f"{value:.2g}%"


def trials_cell(row: dict) -> str:
    """The trials column: ``"10 of 27 (sampled)"`` for a sampled grid, ``"27 of 27"`` for a full
    one, the bare count otherwise; with several seeds per configuration ``"81 = 27 of 27 x 3
    seeds"``; then the trials that did not finish as planned, e.g. ``" (12 stopped early, 2
    failed)"``."""
    ended = [f"{row['stopped_early']} stopped early"] if row.get("stopped_early") else []
    ended += [f"{row[f'outcome/{outcome}']} {outcome}" for outcome in NO_RESULT if row.get(f"outcome/{outcome}")]
    suffix = f" ({', '.join(ended)})" if ended else ""
    seeds = row.get("seeds") or 1
    if row.get("grid_size") is None:
        return f"{row['trials']}{suffix}"
    points = row["trials"] // seeds
    text = f"{points} of {row['grid_size']:,}" + (" (sampled)" if row.get("sampled") else "")
    if seeds > 1:
        text = f"{row['trials']} = {text} x {seeds} seeds"
    return text + suffix


def _short_trials(row: dict) -> str:
    """The headline's trials: ``"36 = 12 of 59,049 x 3"`` for a grid, then what did not end as
    planned (``"(21 stopped, 2 failed)"``)."""
    ended = [f"{row['stopped_early']} stopped"] if row.get("stopped_early") else []
    ended += [f"{row[f'outcome/{outcome}']} {outcome}" for outcome in NO_RESULT if row.get(f"outcome/{outcome}")]
    suffix = f" ({', '.join(ended)})" if ended else ""
    if row.get("grid_size") is None:
        return f"{row['trials']}{suffix}"
    seeds = row.get("seeds") or 1
    text = f"{row['trials'] // seeds} of {row['grid_size']:,}"
    return (f"{row['trials']} = {text} x {seeds}" if seeds > 1 else text) + suffix


def _amount(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    return f"{float(value):,.0f}" if unit == "samples" else f"{float(value):,.1f}"


def _cost(row: dict, unit: str) -> str:
    """A search's cost in ``unit``, a derived one's with its source's: ``"23.5 (251.2 with gradnorm)"``."""
    own = _amount(row.get(cost_key(unit)), unit)
    if row.get("source") is None:
        return own
    return f"{own} ({_amount(row.get(with_source_key(unit)), unit)} with {row['source']})"


def _cost_and_share(row: dict, unit: str) -> str:
    share = row.get(f"grid_{unit}_fraction")
    return _cost(row, unit) + ("" if share is None else f", {percent(share)}")


def _reach(row: dict, unit: str) -> str:
    """When the search first came within noise of the grid's best, as a share of the grid's cost,
    or why it never did: not within the seeds' noise, or one seed and worse."""
    key = reach_key(unit)
    if key not in row:
        return "-"
    if row[key] is not None:
        return percent(row[key])
    if row.get("best_val_score") is None:
        return "never: no result"
    return "never: not within noise" if row.get("seeds") else "never: 1 seed, worse"


def _config(row: dict) -> str:
    text = short_label(row.get("best_config")) or ("-" if row.get("best_config") in (None, "-") else "")
    return text if len(text) <= CONFIG_WIDTH else text[:CONFIG_WIDTH - 3] + "..."


def headline_table(rows: Sequence[dict], unit: str = "compute") -> str:
    """The headline: search | trials | cost in ``unit`` and its share of the grid's | val score |
    test score | Δm% | reached the grid's best at | vs best | best config (shortened). ``Δm%`` only
    when the rows carry ``delta_m`` (a single-task reference ran), the reach only with a grid,
    ``vs best`` only when some search ran several seeds (then the scores read ``mean ± std``)."""
    grid = any(f"grid_{unit}_fraction" in row for row in rows)
    columns: list[Column] = [
        ("search", False, lambda row: str(row["search"])),
        ("trials", True, _short_trials),
        (UNIT_HEADERS[unit] + (", %" if grid else ""), True, lambda row: _cost_and_share(row, unit)),
        ("val score", True, _val_cell),
        ("test score", True, lambda row: _spread(row["best_test_score"], row.get("best_test_std"))),
        *([("Δm%", True, lambda row: _fixed(row.get("delta_m"), 2))] if any("delta_m" in r for r in rows) else []),
        *([("reached best", True, lambda row: _reach(row, unit))] if grid else []),
        *([("vs best", False, lambda row: row.get("vs_best") or "-")] if any("vs_best" in r for r in rows) else []),
        ("best config", False, _config),
    ]
    assert len(columns) <= HEADLINE_COLUMNS
    return render(columns, rows)


def details_table(rows: Sequence[dict], task_metrics: Sequence[str]) -> str:
    """The rest: search | trials (in full) | its cost in every unit known (wall-clock ``compute s``
    first) | wall s | shares of the grid's cost in every unit (and of the full grid's, where a grid's
    is projected) | full grid
    (a grid's own, ``projected`` when fewer of its points ran than it has) | test <each task
    metric> | hypervolume (per s), where the rows carry it | grid front."""
    units = [unit for unit in COST_UNITS if any(cost_key(unit) in row for row in rows)]
    columns: list[Column] = [
        ("search", False, lambda row: str(row["search"])),
        ("trials", True, trials_cell),
        *[(UNIT_HEADERS[unit], True, lambda row, unit=unit: _cost(row, unit)) for unit in units],
        ("wall s", True, lambda row: _seconds(row["wall_seconds"])),
    ]
    sampled = any(row.get("full_grid_projected") for row in rows)
    for unit in units:
        if any(f"grid_{unit}_fraction" in row for row in rows):
            columns.append((f"of grid, {UNIT_HEADERS[unit]}", True,
                            lambda row, unit=unit: percent(row.get(f"grid_{unit}_fraction"))))
        if sampled and any(f"full_grid_{unit}_fraction" in row for row in rows):
            columns.append((f"of full grid, {UNIT_HEADERS[unit]}", True,
                            lambda row, unit=unit: percent(row.get(f"full_grid_{unit}_fraction"))))
    if any("full_grid_projected" in row for row in rows):
        columns.append(("full grid", True, _full_grid))
    columns += [(f"test {name}", True, lambda row, name=name: number(row.get(f"test/{name}"))) for name in task_metrics]
    if any("hypervolume" in row for row in rows):
        columns.append(("hypervolume (per s)", True, _volume_cell))
    if any("front" in row for row in rows):
        columns.append(("grid front", False, lambda row: row.get("front") or "-"))
    return render(columns, rows)


def _volume_cell(row: dict) -> str:
    """``0.0421 (1.3e-04/s)``: the volume the search's front dominates, and per second of compute."""
    if row.get("hypervolume") is None:
        return "-"
    per_second = row.get("hypervolume_per_compute_second")
    return number(row["hypervolume"]) + ("" if per_second is None else f" ({number(per_second)}/s)")


def _full_grid(row: dict) -> str:
    """A grid's full size and cost in its stablest known unit, ``projected`` where it is."""
    if "full_grid_projected" not in row:
        return "-"
    for unit in PREFERRED:
        if full_grid_key(unit) in row:
            text = f"{row['grid_size']:,} points, {_amount(row[full_grid_key(unit)], unit)} {UNIT_HEADERS[unit]}"
            return text + (" (projected)" if row["full_grid_projected"] else "")
    return f"{row['grid_size']:,} points"


def format_table(rows: Sequence[dict], task_metrics: Sequence[str], unit: str = "compute") -> str:
    """The headline table (:func:`headline_table`) and, after a blank line, the rest
    (:func:`details_table`)."""
    return headline_table(rows, unit) + "\n\n" + details_table(rows, task_metrics)


def render(columns: Sequence[Column], rows: Sequence[dict]) -> str:
    """A GitHub-style Markdown table of ``columns``, padded so that its pipes line up."""
    header = [title for title, _, _ in columns]
    right = [aligned for _, aligned, _ in columns]
    body = [[cell(row) for _, _, cell in columns] for row in rows]
    cells = [[c.replace("|", "\\|") for c in line] for line in [header, *body]]
    widths = [max(3, *(len(line[i]) for line in cells)) for i in range(len(header))]

    def line(values: list[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(values, widths, right)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(values) for values in cells[1:])])


def _fixed(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{float(value):.{decimals}f}"


def _val_cell(row: dict) -> str:
    text = _spread(row["best_val_score"], row.get("best_val_std"))
    return f"{text} ({row['best_left_out']})" if row.get("best_left_out") else text


def _spread(value: float | None, std: float | None) -> str:
    return number(value) if std is None or value is None else f"{number(value)} ± {number(std)}"


def number(value: float | None) -> str:
    """A score or metric: 4 decimals, scientific below 1e-3, ``-`` for none."""
    if value is None:
        return "-"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{float(value):,.1f}"
