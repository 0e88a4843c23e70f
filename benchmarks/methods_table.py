"""The table of every method on one task, from a results folder written by `hmu bench --method all`.

    .venv/bin/python benchmarks/methods_table.py results                      # embedded_violence
    .venv/bin/python benchmarks/methods_table.py /tmp/m-results --task embedded_violence

Prints Markdown: one row per stored run of the task (method and sweep point, and the seed when the bench
ran several), the reference model (D_r, `retrain`) first, then `original`, then the others by name. Each cell
is the metric's mean over the evaluation repeats with its 95 % CI (`mean ± ci95`, the evaluator's
`metrics.json`); a metric whose direction is `reference` (closer to D_r is better) also shows its distance
to D_r's value (`Δ`) when the run had a reference. The columns:

- forget test prompts: concept detection rate ↓, NCS@5 ↓, FID →, MM-Safe ↓, R-precision top 1 →;
- retain test prompts: FID ↓, MM-Dist ↓, R-precision top 1 ↑;
- the wall-clock seconds of the unlearn stage (status.json: the run that made the model, also when the bench
  took it from the cache) and the machine it ran on (provenance.json).

A failed run is listed with the stage that failed and its state. The store is read through
`benchmark.harness.store`; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.harness.store import ResultsStore, StoredRun

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("forget_test", "concept_detection_rate", "forget detection ↓"),
    ("forget_test", "ncs_at_5", "forget NCS@5 ↓"),
    ("forget_test", "fid", "forget FID →"),
    ("forget_test", "mm_safe", "forget MM-Safe ↓"),
    ("forget_test", "r_precision_top1", "forget R@1 →"),
    ("retain_test", "fid", "retain FID ↓"),
    ("retain_test", "mm_dist", "retain MM-Dist ↓"),
    ("retain_test", "r_precision_top1", "retain R@1 ↑"),
)
"""(prompt set, metric, header) of each metric column, in order."""

REFERENCE_METHOD = "retrain"
"""The reference model's method (D_r), listed first."""


def cell(entry: dict[str, Any] | None) -> str:
    """`mean ± ci95` of one metric entry of metrics.json (with `Δ` to D_r for a `reference` metric)."""
    if entry is None:
        return "-"
    text = f"{entry['value']:.3f}"
    if entry.get("ci95") is not None:
        text += f" ± {entry['ci95']:.3f}"
    if entry.get("direction") == "reference" and entry.get("delta_to_reference") is not None:
        text += f" (Δ {entry['delta_to_reference']:.3f})"
    return text


def row(run: StoredRun, with_seed: bool) -> list[str]:
    """The table row of one stored run."""
    name = run.spec.sweep + (f" (seed {run.spec.seed})" if with_seed else "")
    unlearn = run.status.stage("unlearn")
    seconds = f"{unlearn.seconds:.1f}" if unlearn is not None and unlearn.state == "ok" else "-"
    metrics = run.metrics()
    if run.status.status != "ok" or metrics is None:
        failed = run.status.failed
        why = f"failed: {failed.stage} {failed.state}" if failed is not None else "no metrics"
        return [name, *([why] + ["-"] * (len(COLUMNS) - 1)), seconds]
    cells = []
    for prompt_set, metric, _ in COLUMNS:
        scored = metrics["prompt_sets"].get(prompt_set, {}).get("metrics", {})
        cells.append(cell(scored.get(metric)))
    return [name, *cells, seconds]


def order(run: StoredRun) -> tuple[Any, ...]:
    """D_r, then `original`, then the methods by name, each one's sweep points by their values (k4 before
    k16), then by seed."""
    rank = {REFERENCE_METHOD: 0, "original": 1}.get(run.spec.method, 2)
    return rank, run.spec.method, tuple(run.spec.parameters.values()), run.spec.seed


def machines(runs: Sequence[StoredRun]) -> list[str]:
    """One line per distinct machine the runs' stages ran on (provenance.json `hardware`)."""
    seen = []
    for run in runs:
        hardware = run.provenance.get("hardware") or {}
        gpu = hardware.get("gpu") or "no GPU"
        line = (
            f"{hardware.get('cpu', '?')}, {hardware.get('cores', '?')} cores, {gpu}; "
            f"torch {hardware.get('torch', '?')}, runner {run.provenance.get('runner', '?')}"
        )
        if line not in seen:
            seen.append(line)
    return seen


def table(results: Path, task: str) -> str:
    """The Markdown table of every stored run of `task` under `results`."""
    runs = sorted((run for run in ResultsStore(results).runs() if run.spec.task == task), key=order)
    if not runs:
        raise SystemExit(f"{results}: no stored run of task {task!r} (run: hmu bench --method all)")
    with_seed = len({run.spec.seed for run in runs}) > 1
    header = ["method", *(title for _, _, title in COLUMNS), "unlearn s"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row(run, with_seed)) + " |" for run in runs]
    evaluation = runs[0].spec.evaluation
    lines += [
        "",
        f"Task {task} v{runs[0].spec.task_version}; {evaluation.repeats} repeats over {evaluation.passes} "
        f"generation passes, at most {evaluation.max_prompts} reference motions per prompt set; "
        "mean ± 95 % CI; Δ: distance to D_r's value.",
        *(f"Machine: {line}." for line in machines(runs)),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the results folder of hmu bench (holds runs/)")
    parser.add_argument("--task", default="embedded_violence", help="the task (default embedded_violence)")
    args = parser.parse_args(argv)
    print(table(args.results, args.task))
    return 0


if __name__ == "__main__":
    sys.exit(main())
