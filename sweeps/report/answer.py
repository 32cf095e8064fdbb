"""The answer of a comparison, in words, from its cost rows alone: which search found the best
validation score and whether the others are within the seeds' noise of it, what each alpha search
cost as a share of the grid (as it ran, and the full grid, projected when it was sampled), what
the recommended static weights reached and at what cost counted with their source's, and Δm%
where a single-task reference ran.

:func:`answer` is the paragraph (the comparison run's description, the sweep's last lines,
``gradnorm-tune report``); :func:`answer_line` its gist in one sentence (the experiment's
description, the cost table's first line). Costs are stated in one unit, the sweep's stable one
(:func:`.costs.stable_unit`: samples processed), with the trials' own CPU (or GPU) time and the
wall-clock seconds beside it.

Pure functions over the rows of :func:`.table.cost_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .costs import UNIT_WORDS, reach_key
from .markdown import number, percent
from .summaries import ALPHA_KIND, GRID_KIND, short_label
from .table import NO_RESULT

__all__ = ["answer", "answer_line", "table_heading"]


def _names(rows: Sequence[dict]) -> str:
    names = [str(row["search"]) for row in rows]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _score(row: dict) -> str:
    """``0.1234 ± 0.0012 over 3 seeds``, or ``0.1234``."""
    std = row.get("best_val_std")
    return number(row["best_val_score"]) + ("" if std is None else f" ± {number(std)} over {row['seeds']} seeds")


def _config(row: dict) -> str:
    short = short_label(row.get("best_config"))
    return f", with {short}" if short and not row.get("source") else ""


def _ranked(rows: Sequence[dict]) -> list[dict]:
    return [row for row in rows if row.get("best_val_score") is not None and not row.get("reference")]


def _grid(rows: Sequence[dict]) -> dict | None:
    """The grid every search is measured against: the first grid row with a result."""
    return next((row for row in _ranked(rows) if row.get("kind") == GRID_KIND), None)


def _best(rows: Sequence[dict]) -> str:
    ranked = _ranked(rows)
    if not ranked:
        return "No search has a result: every trial failed, diverged or was killed."
    low = min(row["best_val_score"] for row in ranked)
    leaders = [row for row in ranked if row["best_val_score"] == low]
    if len(leaders) > 1:
        text = f"{_names(leaders)} tie for the best validation score (lower is better): {number(low)}."
    else:
        text = f"{leaders[0]['search']} found the best validation score (lower is better): {_score(leaders[0])}" \
               f"{_config(leaders[0])}."
    rest = sorted((row for row in ranked if row not in leaders), key=lambda row: row["best_val_score"])
    noise = [row for row in rest if row.get("vs_best") == "within noise"]
    worse = [row for row in rest if row.get("vs_best") == "worse"]
    unknown = [row for row in rest if row.get("vs_best") is None]
    if noise:
        text += f" {_names(noise)} {'is' if len(noise) == 1 else 'are'} within the seeds' noise of it"
        text += f"; {len(worse)} other{'s are' if len(worse) != 1 else ' is'} worse." if worse else "."
    elif worse:
        text += " Every other search is worse beyond the seeds' noise." if not unknown else \
            f" {_names(worse)} {'is' if len(worse) == 1 else 'are'} worse beyond the seeds' noise."
    if unknown:
        runner = unknown[0]
        gap = (runner["best_val_score"] - low) / abs(low) if low else None
        text += (f" With one seed there is no noise to judge by: the next best, {runner['search']}, "
                 f"scored {number(runner['best_val_score'])}" + ("" if gap is None else f" ({percent(gap)} higher)") + ".")
    return text


def _failures(rows: Sequence[dict]) -> str:
    """The searches without a result, and the trials that ended without one."""
    text = ""
    empty = [row for row in rows if row.get("best_val_score") is None and not row.get("reference") and row["trials"]]
    for row in empty:
        ended = ", ".join(f"{row[f'outcome/{o}']} {o}" for o in NO_RESULT if row.get(f"outcome/{o}"))
        text += f" {row['search']} has no result ({ended or 'no trial validated'} of {row['trials']} trials)."
    counts = {outcome: sum(row.get(f"outcome/{outcome}", 0) for row in rows if row not in empty) for outcome in NO_RESULT}
    counts = {outcome: count for outcome, count in counts.items() if count}
    if counts:
        listed = " and ".join(f"{count} trial{'s' if count != 1 else ''} {outcome}" for outcome, count in counts.items())
        text += f" Elsewhere {listed}: counted in their searches' cost, in no score."
    return text


def _grid_words(grid: dict) -> str:
    """``the sampled grid's`` (when fewer of its points ran than it has) or ``the 27-point grid's``."""
    return "the sampled grid's" if grid.get("full_grid_projected") else f"the {grid['grid_size']:,}-point grid's" \
        if grid.get("grid_size") else "the grid's"


def _others(row: dict, unit: str) -> str:
    """The same share in the other units, the trials' own time first, then wall-clock seconds."""
    own = next((other for other in ("gpu", "cpu") if f"grid_{other}_fraction" in row), None)
    parts = [f"{percent(row[f'grid_{other}_fraction'])} of its {UNIT_WORDS[other]}"
             for other in (own, "samples", "compute") if other not in (None, unit) and f"grid_{other}_fraction" in row]
    return f" ({'; '.join(parts)})" if parts else ""


def _alpha(row: dict, grid: dict | None, unit: str) -> str:
    words = UNIT_WORDS[unit]
    if row.get("best_val_score") is None:
        return f" The alpha search {row['search']} has no result."
    if grid is None or f"grid_{unit}_fraction" not in row:
        return ""
    text = f" The alpha search {row['search']} cost {percent(row[f'grid_{unit}_fraction'])} of {_grid_words(grid)} " \
           f"{words}{_others(row, unit)}"
    if grid.get("full_grid_projected") and f"full_grid_{unit}_fraction" in row:
        text += (f", {percent(row[f'full_grid_{unit}_fraction'])} of the full grid's (projected: its "
                 f"{grid['grid_size']:,} points at the mean cost of the {grid['points_ran']:,} that ran)")
    text += "."
    if reach_key(unit) not in row:
        return text
    if row[reach_key(unit)] is None:
        why = "not within the seeds' noise" if row.get("seeds") else "one seed, and worse"
        return text + f" It never came within noise of the grid's best ({why})."
    return text + f" It came within noise of the grid's best at {percent(row[reach_key(unit)])} of the grid's {words}."


def _recommended(row: dict, grid: dict | None, unit: str) -> str:
    if row.get("best_val_score") is None:
        return f" The recommended static weights ({row['search']}) have no result."
    text = f" The recommended static weights{_weights(row)} reached {_score(row)}"
    if row.get("vs_best"):
        text += f" ({row['vs_best']} against the best)"
    share = row.get(f"grid_{unit}_fraction")
    if grid is not None and share is not None:
        return text + f", at {percent(share)} of {_grid_words(grid)} {UNIT_WORDS[unit]} counted with {row['source']}'s."
    cost = row.get("samples_with_source" if unit == "samples" else f"{unit}_with_source_seconds")
    return text + ("." if cost is None else f", at {cost:,.1f} {UNIT_WORDS[unit]} counted with {row['source']}'s.")


def _weights(row: dict) -> str:
    short = short_label(row.get("best_config"))
    return f" {short.removeprefix('w=')}" if short.startswith("w=") else ""


def _delta(rows: Sequence[dict]) -> str:
    ranked = _ranked(rows)
    if not ranked or not any(row.get("delta_m") is not None for row in ranked):
        return ""
    low = min(row["best_val_score"] for row in ranked)
    chosen = [row for row in ranked if row.get("delta_m") is not None and (
        row["best_val_score"] == low or row.get("kind") in (ALPHA_KIND, GRID_KIND) or row.get("source"))]
    listed = ", ".join(f"{row['search']} {row['delta_m']:+.2f}" for row in chosen)
    return f" Δm% against training each task alone (lower is better; below 0 beats it): {listed}."


def answer(rows: Sequence[dict], unit: str = "compute") -> str:
    """The answer in one paragraph (see the module's docstring); costs in ``unit``."""
    grid = _grid(rows)
    text = _best(rows) + _failures(rows)
    alphas = [row for row in rows if row.get("kind") == ALPHA_KIND]
    if grid is None and any(row.get("kind") == GRID_KIND for row in rows):
        text += " The static grid has no result, so no search's cost is measured against it."
    elif grid is None and alphas:
        text += " No static grid ran, so no search's cost is measured against one."
    for row in alphas:
        text += _alpha(row, grid, unit)
    for row in rows:
        if row.get("source"):
            text += _recommended(row, grid, unit)
    return (text + _delta(rows)).strip()


def answer_line(rows: Sequence[dict], unit: str = "compute") -> str:
    """The answer's gist in one sentence: the best search, and what the first alpha search cost
    against the grid."""
    ranked = _ranked(rows)
    if not ranked:
        return "No search has a result."
    low = min(row["best_val_score"] for row in ranked)
    leaders = [row for row in ranked if row["best_val_score"] == low]
    text = f"Best validation score: {_names(leaders)} ({number(low)})"
    grid = _grid(rows)
    alpha = next((row for row in rows if row.get("kind") == ALPHA_KIND and f"grid_{unit}_fraction" in row), None)
    if grid is not None and alpha is not None:
        text += (f"; the alpha search {alpha['search']} cost {percent(alpha[f'grid_{unit}_fraction'])} of "
                 f"{_grid_words(grid)} {UNIT_WORDS[unit]}")
        if grid.get("full_grid_projected") and f"full_grid_{unit}_fraction" in alpha:
            text += f" ({percent(alpha[f'full_grid_{unit}_fraction'])} of the full grid's, projected)"
    return text + "."


def table_heading(rows: Sequence[dict], unit: str = "compute") -> str:
    """The cost table's first line: that lower is better, what the shares are of, and the answer's
    gist (:func:`answer_line`)."""
    text = "Scores: lower is better."
    grid = _grid(rows)
    if any(f"grid_{unit}_fraction" in row for row in rows):
        text += (f" Shares (%) are of the grid's {UNIT_WORDS[unit]}"
                 + (f" as it ran ({grid['points_ran']:,} of its {grid['grid_size']:,} points; the full grid's, "
                    "projected: second table)" if grid is not None and grid.get("full_grid_projected") else "")
                 + ("" if unit == "compute" else
                    ", which the machine's load does not move (its CPU time and wall-clock seconds: second table)")
                 + "; *reached best*: the share spent when a search first came within noise of the grid's best.")
    return f"{text} {answer_line(rows, unit)}"
