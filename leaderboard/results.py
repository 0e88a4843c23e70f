"""What the site shows, read from run folders: every run of every results folder, merged, grouped into tables
and cells, with the one run each cell shows chosen.

    >>> board = collect([Path("results"), Path("bundle-from-alice")])
    >>> [table.title for table in board.tables]
    ['embedded_violence v1']
    >>> cell = board.tables[0].cells[0]
    >>> cell.chosen.run_id, [run.run_id for run in cell.others]

A results folder is any folder with a `runs/` subfolder: the harness's `results/`, or a bundle of
`hmu submit` (`runs/` plus `MANIFEST.json`). Run folders are read through `benchmark.harness.store`; one that
cannot be read is kept as `Unreadable` (shown on the site, never dropped).

- **Duplicates.** The same run id in two folders is the same run stored twice: with the same `record_id` it
  is one record seen twice (a bundle made from a results folder); with another it was stored again (a second
  bench on the same inputs). Either way the newest record is used and the other is listed as a `Duplicate`.
- **Tables.** Numbers are compared only where they are comparable: one table per task, task version, dataset,
  base model, evaluation plan and evaluator (`TableKey`). A task run on two base models (or with two plans)
  gets two tables, never one mixed one; their titles name what differs.
- **Cells.** One row per (method, sweep point, seed). Several run ids can fill one cell (a new method image or
  code gives a new run id): the cell shows the newest ok run (by `stored_at`, then `record_id`; the newest
  failed one when none is ok) and lists the others.
- **Reference.** Runs name their reference run (`RunSpec.reference`, D_r); the methods of the runs named so
  are the reference methods, shown as reference rows and never ranked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import HMUError
from benchmark.harness.spec import sha256_json
from benchmark.harness.store import LOGS_DIR, ResultsStore, StoredRun, read_run

LOG_TAIL_LINES = 40
"""Lines of a failed stage's log the site shows."""

_LOG_TAIL_BYTES = 16_384


class LeaderboardError(HMUError):
    """The site cannot be made: no results folder, an output folder that is not a site."""


@dataclass(frozen=True)
class Unreadable:
    """A run folder that could not be read (malformed or incomplete files)."""

    path: Path
    """The folder."""
    error: str
    """Why, naming the file."""


@dataclass(frozen=True)
class Run:
    """One run folder with what the site reads from it."""

    stored: StoredRun
    """The folder's spec, status and provenance."""
    source: Path
    """The results folder it was found in."""
    metrics: Mapping[str, Any] | None
    """Its metrics.json, or None."""

    @property
    def run_id(self) -> str:
        return self.stored.run_id

    @property
    def path(self) -> Path:
        return self.stored.path

    @property
    def spec(self) -> Any:
        return self.stored.spec

    @property
    def ok(self) -> bool:
        return self.stored.status.status == "ok" and self.metrics is not None

    @property
    def stored_at(self) -> str:
        return self.stored.status.stored_at

    @property
    def record_id(self) -> str:
        return self.stored.status.record_id

    @property
    def state(self) -> str:
        """`ok`, or `<stage> <state>` of the first stage that was not ok."""
        failed = self.stored.status.failed
        if failed is None:
            return "ok" if self.metrics is not None else "no metrics.json"
        return f"{failed.stage} {failed.state}"

    @property
    def message(self) -> str:
        failed = self.stored.status.failed
        if failed is not None:
            return failed.message
        return "every stage ok" if self.metrics is not None else "status ok but metrics.json is missing"

    @property
    def unlearn_seconds(self) -> float | None:
        """Wall seconds of the unlearn stage (of the run that made it, when cached), or None."""
        stage = self.stored.status.stage("unlearn")
        return stage.seconds if stage is not None and stage.state == "ok" else None

    @property
    def unlearn_peak_memory_bytes(self) -> int | None:
        """Memory high-water mark of the unlearn stage where the runner measured it, or None."""
        stage = self.stored.status.stage("unlearn")
        return stage.peak_memory_bytes if stage is not None and stage.state == "ok" else None

    def provenance(self, *keys: str) -> Any:
        """A value of provenance.json by its path of keys, or None where it is absent."""
        value: Any = self.stored.provenance
        for key in keys:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return value

    def log_tail(self, stage: str) -> str:
        """The last lines of a stage's stderr.log (stdout.log when stderr is empty); '' without logs."""
        for name in ("stderr.log", "stdout.log"):
            path = self.path / LOGS_DIR / stage / name
            if path.is_file() and path.stat().st_size > 0:
                with path.open("rb") as stream:
                    stream.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
                    text = stream.read().decode("utf-8", errors="replace")
                return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])
        return ""

    def concept(self) -> str | None:
        """The concept the run unlearned (its unlearn request), or None."""
        request = self.path / "unlearn" / "request.json"
        try:
            concept = json.loads(request.read_text(encoding="utf-8")).get("concept", {})
        except (OSError, ValueError):
            return None
        return concept.get("name") if isinstance(concept, dict) else None


@dataclass(frozen=True)
class Duplicate:
    """A run id found more than once."""

    run_id: str
    """The run id."""
    used: Path
    """The folder used (the newest record)."""
    other: Path
    """The folder not used."""
    same_record: bool
    """True when both folders hold the same record (one run seen twice), False when it was stored again."""


@dataclass(frozen=True)
class TableKey:
    """What makes numbers comparable: the same task version, data, base model, plan and evaluator."""

    task: str
    task_version: int
    data_hash: str
    base_model_hash: str
    plan_hash: str
    evaluator_hash: str

    @classmethod
    def of(cls, run: Run) -> TableKey:
        spec = run.spec
        return cls(
            spec.task,
            spec.task_version,
            spec.data_hash,
            spec.base_model_hash,
            spec.plan_hash,
            spec.evaluator_hash,
        )

    @property
    def slug(self) -> str:
        """A short id for anchors and file names."""
        digest = sha256_json([self.data_hash, self.base_model_hash, self.plan_hash, self.evaluator_hash])
        return f"{self.task}-v{self.task_version}-{digest[:8]}"


@dataclass(frozen=True)
class Cell:
    """One row of a table: a (method, sweep point, seed) with the run it shows and the others."""

    method: str
    sweep: str
    seed: int
    chosen: Run
    """The newest ok run (the newest failed one when none is ok)."""
    others: tuple[Run, ...]
    """The other runs of the cell, newest first."""
    reference: bool
    """A run of a reference method (D_r)."""

    @property
    def label(self) -> str:
        """The sweep point, as the table names the row (`lcr-k16`; the method name when it sweeps nothing)."""
        return self.sweep


@dataclass(frozen=True)
class Table:
    """The runs of one task under one `TableKey`, one cell per (method, sweep point, seed)."""

    key: TableKey
    cells: tuple[Cell, ...]
    """Reference cells first, then by method, sweep point and seed."""
    concept: str | None
    """The concept unlearned (from an unlearn request), or None."""
    title: str
    """`embedded_violence v1`, with the plan and evaluator when the task has several tables."""

    @property
    def runs(self) -> list[Run]:
        return [run for cell in self.cells for run in (cell.chosen, *cell.others)]

    @property
    def newest(self) -> str:
        return max(run.stored_at for run in self.runs)

    def cell(self, method: str, seed: int) -> Cell | None:
        """The first cell of `method` with `seed` (reference or original lookups)."""
        return next((c for c in self.cells if c.method == method and c.seed == seed), None)

    def prompt_set_sizes(self) -> dict[str, tuple[int, int]]:
        """(reference motions, prompts) of each prompt set, as the evaluator counted them (one plan per table,
        so the first run that reports a set speaks for all)."""
        sizes: dict[str, tuple[int, int]] = {}
        for cell in self.cells:
            for name, prompt_set in (cell.chosen.metrics or {}).get("prompt_sets", {}).items():
                if isinstance(prompt_set, Mapping) and name not in sizes:
                    groups, items = prompt_set.get("groups"), prompt_set.get("items")
                    if isinstance(groups, int) and isinstance(items, int):
                        sizes[name] = (groups, items)
        return sizes

    def evaluator_warnings(self) -> list[tuple[str, int]]:
        """The warnings the evaluator wrote into the shown runs' metrics.json, with how many runs got each."""
        counts: dict[str, int] = {}
        for cell in self.cells:
            for warning in (cell.chosen.metrics or {}).get("warnings", []):
                counts[str(warning)] = counts.get(str(warning), 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class Board:
    """Everything the site shows."""

    sources: tuple[Path, ...]
    """The results folders read, in the order given."""
    runs: tuple[Run, ...]
    """Every run used, by run id."""
    tables: tuple[Table, ...]
    """By task, then newest first."""
    unreadable: tuple[Unreadable, ...]
    """Run folders that could not be read."""
    duplicates: tuple[Duplicate, ...]
    """Run ids found more than once."""
    notes: tuple[str, ...]
    """What the runs say they lack (no reference model), deduplicated."""

    @property
    def failed(self) -> list[Run]:
        return [run for run in self.runs if not run.ok]

    @property
    def methods(self) -> list[str]:
        return sorted({run.spec.method for run in self.runs})

    @property
    def tasks(self) -> list[str]:
        return sorted({table.key.task for table in self.tables})


def results_folder(path: Path) -> Path:
    """`path` when it holds a `runs/` folder; a LeaderboardError otherwise."""
    if not (path / "runs").is_dir():
        raise LeaderboardError(
            f"{path}: not a results folder or bundle (no runs/ inside; `hmu bench` or `hmu submit` make one)"
        )
    return path


def _newest(runs: Iterable[Run]) -> list[Run]:
    """Newest first, deterministic: by stored_at, then record_id."""
    return sorted(runs, key=lambda run: (run.stored_at, run.record_id), reverse=True)


def _read(source: Path) -> tuple[list[Run], list[Unreadable]]:
    runs, unreadable = [], []
    for path in ResultsStore(source).run_paths():
        try:
            stored = read_run(path)
            metrics = stored.metrics()
        except HMUError as error:
            unreadable.append(Unreadable(path, str(error)))
            continue
        runs.append(Run(stored, source, metrics))
    return runs, unreadable


def collect(sources: Sequence[Path]) -> Board:
    """Read every results folder and build the board (module docstring)."""
    if not sources:
        raise LeaderboardError("no results folder given")
    found: dict[str, list[Run]] = {}
    unreadable: list[Unreadable] = []
    for source in dict.fromkeys(sources):
        runs, bad = _read(results_folder(source))
        unreadable += bad
        for run in runs:
            found.setdefault(run.run_id, []).append(run)

    used: dict[str, Run] = {}
    duplicates: list[Duplicate] = []
    for run_id, copies in sorted(found.items()):
        newest, *older = _newest(copies)
        used[run_id] = newest
        for other in older:
            duplicates.append(Duplicate(run_id, newest.path, other.path, other.record_id == newest.record_id))

    reference_ids = {run.spec.reference for run in used.values() if run.spec.reference is not None}
    reference_methods = {used[run_id].spec.method for run_id in reference_ids if run_id in used}
    grouped: dict[TableKey, dict[tuple[str, str, int], list[Run]]] = {}
    for run in used.values():
        cell_key = (run.spec.method, run.spec.sweep, run.spec.seed)
        grouped.setdefault(TableKey.of(run), {}).setdefault(cell_key, []).append(run)

    tables = []
    for key, cells in grouped.items():
        built = []
        for (method, sweep, seed), runs in cells.items():
            ordered = _newest(runs)
            chosen = next((run for run in ordered if run.ok), ordered[0])
            others = tuple(run for run in ordered if run is not chosen)
            built.append(Cell(method, sweep, seed, chosen, others, method in reference_methods))
        built.sort(key=lambda c: (not c.reference, c.method, natural_key(c.sweep), c.seed))
        concept = next((c for c in (cell.chosen.concept() for cell in built) if c), None)
        siblings = [other for other in grouped if other.task == key.task]
        title = f"{key.task} v{key.task_version}{_differences(key, siblings)}"
        tables.append(Table(key, tuple(built), concept, title))
    tables.sort(key=lambda t: (t.key.task, _descending(t.newest), t.key.slug))

    notes = dict.fromkeys(note for run in used.values() for note in run.stored.status.notes)
    return Board(
        sources=tuple(dict.fromkeys(sources)),
        runs=tuple(used[run_id] for run_id in sorted(used)),
        tables=tuple(tables),
        unreadable=tuple(unreadable),
        duplicates=tuple(duplicates),
        notes=tuple(notes),
    )


_KEY_NAMES = {
    "data_hash": "data",
    "base_model_hash": "base model",
    "plan_hash": "plan",
    "evaluator_hash": "evaluator",
}


def _differences(key: TableKey, siblings: list[TableKey]) -> str:
    """` (base model e45be506, plan b6be58c7)`: what tells this table apart from the task's other tables
    of the same version ('' when it is the only one)."""
    same_version = [other for other in siblings if other.task_version == key.task_version]
    parts = [
        f"{label} {getattr(key, name)[:8]}"
        for name, label in _KEY_NAMES.items()
        if len({getattr(other, name) for other in same_version}) > 1
    ]
    return f" ({', '.join(parts)})" if parts else ""


def natural_key(text: str) -> tuple[tuple[int, float, str], ...]:
    """Sorts `lcr-k4` before `lcr-k16`: digit runs compare as numbers."""
    parts = re.split(r"(\d+(?:\.\d+)?)", text)
    return tuple((1, float(part), "") if index % 2 else (0, 0.0, part) for index, part in enumerate(parts))


def _descending(text: str) -> tuple[int, ...]:
    """A sort key putting later ISO timestamps first."""
    return tuple(-ord(char) for char in text)
