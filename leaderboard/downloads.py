"""The site's downloads: every result as CSV (one row per run, prompt set and metric; one row per failed run)
and as JSON (one object per run), each row carrying its provenance.

    >>> write_downloads(board, Path("site"))      # site/results.csv, site/results.json

Each row names: the run (id, status, failed stage and state), the method and its version and sweep point, the
task and its version, the seed, the method image's digest, the evaluator (kind, identity hash, image digest),
the git commit of the code that ran it (and whether the checkout had changes), the date the run was stored,
and whether the run is the one its cell shows (`shown`: the newest ok run of its (method, sweep, seed)).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .results import Board, Run

RESULTS_SCHEMA = "hmu.leaderboard-results/1"
"""Schema id of results.json."""

CSV_FIELDS: tuple[str, ...] = (
    "run_id",
    "status",
    "state",
    "shown",
    "method",
    "method_version",
    "sweep",
    "task",
    "task_version",
    "seed",
    "prompt_set",
    "metric",
    "direction",
    "declared",
    "value",
    "ci95",
    "n_repeats",
    "reference_value",
    "delta_to_reference",
    "delta_ci95",
    "method_image",
    "method_image_digest",
    "evaluator_kind",
    "evaluator_sha256",
    "evaluator_image_digest",
    "git_commit",
    "git_dirty",
    "stored_at",
    "reference_run",
    "unlearn_seconds",
    "unlearn_peak_memory_bytes",
)


def provenance_fields(run: Run, shown: bool) -> dict[str, Any]:
    """The identity and provenance columns of a run's rows."""
    spec = run.spec
    evaluator = run.metrics.get("evaluator", {}) if run.metrics else {}
    return {
        "run_id": run.run_id,
        "status": run.stored.status.status,
        "state": run.state,
        "shown": shown,
        "method": spec.method,
        "method_version": spec.method_version,
        "sweep": spec.sweep,
        "task": spec.task,
        "task_version": spec.task_version,
        "seed": spec.seed,
        "method_image": spec.method_image.reference,
        "method_image_digest": spec.method_image.digest,
        "evaluator_kind": evaluator.get("kind"),
        "evaluator_sha256": spec.evaluator_hash,
        "evaluator_image_digest": spec.evaluator_image.digest,
        "git_commit": run.provenance("code", "git", "commit"),
        "git_dirty": run.provenance("code", "git", "dirty"),
        "stored_at": run.stored_at,
        "reference_run": spec.reference,
        "unlearn_seconds": run.unlearn_seconds,
        "unlearn_peak_memory_bytes": run.unlearn_peak_memory_bytes,
    }


def _shown(board: Board) -> set[str]:
    return {cell.chosen.run_id for table in board.tables for cell in table.cells}


def csv_rows(board: Board) -> list[dict[str, Any]]:
    """One row per (run, prompt set, metric); a run without metrics gives one row with the metric empty."""
    shown = _shown(board)
    rows = []
    for run in board.runs:
        base = provenance_fields(run, run.run_id in shown)
        prompt_sets = run.metrics.get("prompt_sets", {}) if run.metrics else {}
        entries = [
            (set_name, name, entry)
            for set_name, prompt_set in prompt_sets.items()
            for name, entry in prompt_set.get("metrics", {}).items()
        ]
        if not entries:
            rows.append(dict(base))
        for set_name, name, entry in entries:
            rows.append(
                {
                    **base,
                    "prompt_set": set_name,
                    "metric": name,
                    "direction": entry.get("direction"),
                    "declared": entry.get("declared"),
                    "value": entry.get("value"),
                    "ci95": entry.get("ci95"),
                    "n_repeats": entry.get("n_repeats"),
                    "reference_value": entry.get("reference_value"),
                    "delta_to_reference": entry.get("delta_to_reference"),
                    "delta_ci95": entry.get("delta_ci95"),
                }
            )
    return rows


def json_document(board: Board) -> dict[str, Any]:
    """results.json: every run with its provenance, status, stages and metrics (without per-repeat values,
    which stay in the run folder's metrics.json)."""
    shown = _shown(board)
    runs = []
    for run in board.runs:
        metrics = None
        if run.metrics is not None:
            metrics = {
                set_name: {
                    name: {key: value for key, value in entry.items() if key != "repeats"}
                    for name, entry in prompt_set.get("metrics", {}).items()
                }
                for set_name, prompt_set in run.metrics.get("prompt_sets", {}).items()
            }
        runs.append(
            {
                **provenance_fields(run, run.run_id in shown),
                "message": run.message,
                "parameters": dict(run.spec.parameters),
                "stages": [stage.to_json() for stage in run.stored.status.stages],
                "metrics": metrics,
            }
        )
    return {"schema": RESULTS_SCHEMA, "runs": runs}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return value


def write_downloads(board: Board, out: Path) -> tuple[Path, Path]:
    """Write results.csv and results.json into `out`; returns their paths."""
    csv_path, json_path = out / "results.csv", out / "results.json"
    with csv_path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in csv_rows(board):
            writer.writerow({key: _cell(row.get(key)) for key in CSV_FIELDS})
    json_path.write_text(
        json.dumps(json_document(board), indent=1, allow_nan=False, sort_keys=False) + "\n", encoding="utf-8"
    )
    return csv_path, json_path
