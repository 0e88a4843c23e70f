"""The numbers of a table: its metric columns, each cell's score with its 95% CI, the per-metric ranks with
ties where CIs overlap, and the aggregate rank.

    >>> scored = score_table(table)
    >>> [column.key for column in scored.columns]          # every declared metric, forget sets first
    ['forget_test.fid', 'forget_test.r_precision_top1', ..., 'retain_test.fid', ...]
    >>> row = scored.rows[0]
    >>> row.scores["forget_test.fid"].value, row.scores["forget_test.fid"].delta, row.rank

Columns are the metrics the task declares on a prompt set (`declared` in metrics.json: the ones the
leaderboard ranks), grouped by the prompt set's source: the forget group (`forget`, `implicit`) and the retain
group (`retain`); a custom prompt list (`list`) is its own group.

How a column ranks, by its direction on that prompt set:
- `lower` / `higher`: the value, with its CI half-width;
- `reference`: the distance to the reference run (`delta_to_reference`, lower is better) with its CI
  (`delta_ci95`); without a reference run it cannot be ranked and the column only shows values.

Per column, a row's rank is 1 + the number of rows significantly better than it: better, with CIs that do
not overlap (`ci_ranks`). Two rows whose intervals overlap tie, as do rows whose intervals overlap a third.
The aggregate is the mean of a row's column ranks over the columns every competing row is ranked on (a
row measured without a reference would otherwise be judged on fewer columns), and the aggregate rank is
1 + the number of rows with a smaller mean (equal means tie). Reference rows and failed runs are not ranked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .results import Cell, Table

GROUPS: dict[str, str] = {"forget": "forget", "implicit": "forget", "retain": "retain", "list": "list"}
"""Prompt set source -> the table group it is shown in."""

HEADLINE_METRICS = ("concept_detection_rate", "ncs_at_5")
"""Shown first in their group when a task declares them: whether the concept is still generated."""

GROUP_TITLES: dict[str, str] = {
    "forget": "Forget set",
    "retain": "Retain set",
    "list": "Prompt lists",
}


@dataclass(frozen=True)
class Column:
    """One declared metric on one prompt set."""

    prompt_set: str
    """The prompt set (`forget_test`)."""
    source: str
    """Its source: forget, implicit, retain or list."""
    metric: str
    """The metric id (`fid`)."""
    direction: Literal["lower", "higher", "reference"]
    """Which way is better on this prompt set."""
    description: str
    """What it measures."""

    @property
    def key(self) -> str:
        return f"{self.prompt_set}.{self.metric}"

    @property
    def group(self) -> str:
        return GROUPS.get(self.source, "list")

    @property
    def arrow(self) -> str:
        """↓ lower is better, ↑ higher, → closer to the reference (the HMU README's arrows)."""
        return {"lower": "↓", "higher": "↑", "reference": "→"}[self.direction]


@dataclass(frozen=True)
class Score:
    """A metric of one run on one prompt set."""

    value: float
    """Mean over the repeats."""
    ci95: float | None
    """Half-width of its 95% CI (None with one repeat)."""
    reference_value: float | None
    """The reference run's value (None without a reference)."""
    delta: float | None
    """|value - reference value|."""
    delta_ci95: float | None
    """Half-width of the CI of the distance."""
    direction: str
    """lower, higher or reference."""

    @property
    def ranked(self) -> tuple[float, float, Literal["lower", "higher"]] | None:
        """(number, CI half-width, better direction) that ranks it, or None when it cannot be ranked."""
        if self.direction == "reference":
            if self.delta is None:
                return None
            return self.delta, self.delta_ci95 or 0.0, "lower"
        better: Literal["lower", "higher"] = "higher" if self.direction == "higher" else "lower"
        return self.value, self.ci95 or 0.0, better

    @property
    def sort_value(self) -> float:
        """What the column sorts by: the ranked number, else the value."""
        ranked = self.ranked
        return ranked[0] if ranked is not None else self.value


@dataclass(frozen=True)
class Row:
    """A cell of the table with its scores and ranks."""

    cell: Cell
    scores: Mapping[str, Score]
    """Column key -> score (absent: the run has no value for it)."""
    ranks: Mapping[str, int]
    """Column key -> the row's rank in that column (ranked rows only)."""
    mean_rank: float | None
    """Mean of `ranks` (None: not ranked)."""
    rank: int | None
    """The aggregate rank (None: a reference row, a failed run, or nothing rankable)."""

    @property
    def ranked(self) -> bool:
        return self.rank is not None


@dataclass(frozen=True)
class ScoredTable:
    """A table with its columns and rows."""

    table: Table
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    """Reference rows, then by aggregate rank, then unranked and failed rows."""
    has_reference: bool
    """Some run was measured against a reference run."""
    aggregated: tuple[str, ...] = ()
    """Keys of the columns the aggregate rank averages: those every competing row is ranked on."""

    def groups(self) -> list[tuple[str, list[Column]]]:
        """(group, its columns) in display order."""
        order: dict[str, list[Column]] = {}
        for column in self.columns:
            order.setdefault(column.group, []).append(column)
        return [(group, order[group]) for group in ("forget", "retain", "list") if group in order]

    def rankable(self) -> list[Column]:
        """Columns with a rankable score in some row."""
        return [c for c in self.columns if any(r.scores.get(c.key, _NONE).ranked for r in self.rows)]

    def row(self, cell: Cell) -> Row:
        return next(row for row in self.rows if row.cell is cell)

    def prompt_set_spans(self) -> list[tuple[str, int]]:
        """(prompt set, its number of columns) for consecutive columns, as the header shows them."""
        spans: list[tuple[str, int]] = []
        for column in self.columns:
            if spans and spans[-1][0] == column.prompt_set:
                spans[-1] = (column.prompt_set, spans[-1][1] + 1)
            else:
                spans.append((column.prompt_set, 1))
        return spans

    def tied(self, row: Row) -> bool:
        """Another ranked row has the same aggregate rank."""
        return row.rank is not None and sum(1 for other in self.rows if other.rank == row.rank) > 1


_NONE = Score(math.nan, None, None, None, None, "reference")


def _columns(metrics_files: Sequence[Mapping[str, Any]]) -> list[Column]:
    """The declared (prompt set, metric) pairs of the runs, forget group first, then in plan and suite
    order."""
    found: dict[str, Column] = {}
    for metrics in metrics_files:
        for set_name, prompt_set in metrics.get("prompt_sets", {}).items():
            for name, entry in prompt_set.get("metrics", {}).items():
                if entry.get("declared") and f"{set_name}.{name}" not in found:
                    found[f"{set_name}.{name}"] = Column(
                        set_name,
                        str(prompt_set.get("source", "list")),
                        name,
                        entry["direction"],
                        str(entry.get("description", "")),
                    )
    group_order = {"forget": 0, "retain": 1, "list": 2}
    columns = list(found.values())
    # Plan order of the prompt sets within a group; in a prompt set, the headline metrics first.
    sets = {name: index for index, name in enumerate(dict.fromkeys(c.prompt_set for c in columns))}
    headline = {name: index for index, name in enumerate(HEADLINE_METRICS)}
    return sorted(
        columns,
        key=lambda c: (group_order[c.group], sets[c.prompt_set], headline.get(c.metric, len(headline))),
    )


def _score(entry: Mapping[str, Any]) -> Score:
    return Score(
        float(entry["value"]),
        entry.get("ci95"),
        entry.get("reference_value"),
        entry.get("delta_to_reference"),
        entry.get("delta_ci95"),
        str(entry["direction"]),
    )


def ci_ranks(
    scores: Sequence[tuple[float, float] | None], better: Literal["lower", "higher"]
) -> list[int | None]:
    """1 + how many entries are significantly better (better, and the 95% intervals do not overlap); None
    stays None. `scores` holds (value, CI half-width) pairs."""
    ranks: list[int | None] = []
    for score in scores:
        if score is None:
            ranks.append(None)
            continue
        value, half = score
        beaten = 0
        for other in scores:
            if other is None:
                continue
            if better == "lower" and other[0] + other[1] < value - half:
                beaten += 1
            elif better == "higher" and other[0] - other[1] > value + half:
                beaten += 1
        ranks.append(1 + beaten)
    return ranks


def aggregate_ranks(means: Sequence[float | None]) -> list[int | None]:
    """1 + how many rows have a smaller mean rank (equal means tie); None stays None."""
    return [
        None if mean is None else 1 + sum(1 for other in means if other is not None and other < mean - 1e-9)
        for mean in means
    ]


def score_table(table: Table) -> ScoredTable:
    """The columns, scores and ranks of a table (module docstring)."""
    metrics = [cell.chosen.metrics for cell in table.cells if cell.chosen.ok and cell.chosen.metrics]
    columns = _columns([m for m in metrics if m is not None])
    scores: list[dict[str, Score]] = []
    for cell in table.cells:
        row: dict[str, Score] = {}
        if cell.chosen.ok and cell.chosen.metrics is not None:
            for column in columns:
                prompt_set = cell.chosen.metrics.get("prompt_sets", {}).get(column.prompt_set, {})
                entry = prompt_set.get("metrics", {}).get(column.metric)
                if entry is not None:
                    row[column.key] = _score(entry)
        scores.append(row)

    competing = [not cell.reference and cell.chosen.ok for cell in table.cells]
    ranks: list[dict[str, int]] = [{} for _ in table.cells]
    for column in columns:
        entries = [s.get(column.key) for s in scores]
        ranked = [
            e.ranked if e is not None and take else None for e, take in zip(entries, competing, strict=True)
        ]
        directions = {r[2] for r in ranked if r is not None}
        if len(directions) != 1:
            continue  # nothing rankable here
        column_ranks = ci_ranks([(r[0], r[1]) if r else None for r in ranked], directions.pop())
        for index, rank in enumerate(column_ranks):
            if rank is not None:
                ranks[index][column.key] = rank
    # The aggregate counts only the columns every competing row is ranked on: a row without a reference
    # distance is not judged on fewer (and easier) columns than the others.
    competitors = [r for r, take in zip(ranks, competing, strict=True) if take]
    shared = [c.key for c in columns if competitors and all(c.key in r for r in competitors)]
    means = [
        sum(r[key] for key in shared) / len(shared) if take and shared else None
        for r, take in zip(ranks, competing, strict=True)
    ]
    overall = aggregate_ranks(means)
    rows = [Row(cell, scores[i], ranks[i], means[i], overall[i]) for i, cell in enumerate(table.cells)]
    # Reference rows first, then by aggregate rank, unranked ok rows, failed runs last (stable: table order).
    rows.sort(key=lambda r: (not r.cell.reference, not r.cell.chosen.ok, r.rank is None, r.rank or 0))
    has_reference = any(s.reference_value is not None for row in scores for s in row.values())
    return ScoredTable(table, tuple(columns), tuple(rows), has_reference, tuple(shared))
