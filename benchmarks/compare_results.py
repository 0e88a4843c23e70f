"""Do two results folders agree? Their runs matched on (task, sweep point, seed), metric by metric.

    .venv/bin/python benchmarks/compare_results.py /tmp/clone-a/results /tmp/clone-b/results

A reproducibility check: two fresh clones (or two commits) that ran the same bench should store the same
numbers. Run ids differ whenever an image or the code changed, so runs are matched on what they are, not on
their ids. For each pair of ok runs the script compares every metric of every prompt set in metrics.json (the
mean, the CI and every repeat); it prints each pair that differs with its largest difference, then a summary
line. Exit 0: every matched pair is identical; 1: some differ; 2: nothing matched. Nothing is written.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from benchmark.harness.store import ResultsStore

RunKey = tuple[str, str, int]


def ok_runs(results: Path) -> dict[RunKey, dict[str, Any]]:
    """(task, sweep point, seed) -> the metrics.json of its newest ok run in `results`."""
    found: dict[RunKey, tuple[str, dict[str, Any]]] = {}
    for run in ResultsStore(results).runs():
        metrics = run.metrics()
        if run.status.status != "ok" or metrics is None:
            continue
        key = (run.spec.task, run.spec.sweep, run.spec.seed)
        if key not in found or run.status.stored_at > found[key][0]:
            found[key] = (run.status.stored_at, metrics)
    return {key: metrics for key, (_, metrics) in found.items()}


def numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """Every number of the prompt sets' metrics, flattened: `set.metric.value`, `.ci95`, `.repeats.3`."""
    flat: dict[str, float] = {}
    for set_name, prompt_set in metrics.get("prompt_sets", {}).items():
        for metric, entry in prompt_set.get("metrics", {}).items():
            for field in ("value", "ci95"):
                if isinstance(entry.get(field), int | float):
                    flat[f"{set_name}.{metric}.{field}"] = float(entry[field])
            for index, value in enumerate(entry.get("repeats") or []):
                flat[f"{set_name}.{metric}.repeats.{index}"] = float(value)
    return flat


def largest_difference(first: dict[str, float], second: dict[str, float]) -> tuple[str, float] | None:
    """The number that differs most (a name only one side has counts as infinitely different); None: equal."""
    worst: tuple[str, float] | None = None
    for name in sorted(set(first) | set(second)):
        a, b = first.get(name), second.get(name)
        if a is None or b is None:
            gap = math.inf
        elif a == b or (math.isnan(a) and math.isnan(b)):
            continue
        else:
            gap = abs(a - b)
        if worst is None or gap > worst[1]:
            worst = (name, gap)
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("first", type=Path, help="a results folder written by hmu bench")
    parser.add_argument("second", type=Path, help="another one")
    args = parser.parse_args(argv)
    for folder in (args.first, args.second):
        if not ResultsStore(folder).runs_dir.is_dir():
            parser.error(f"{folder}: no runs/ folder in it, so not a results folder of hmu bench")
    first, second = ok_runs(args.first), ok_runs(args.second)
    common = sorted(set(first) & set(second))
    different = 0
    for key in common:
        worst = largest_difference(numbers(first[key]), numbers(second[key]))
        if worst is not None:
            different += 1
            print(f"differs: {key[0]} {key[1]} seed {key[2]}: {worst[0]} by {worst[1]:.3g}")
    print(
        f"{len(common)} ok runs in both: {len(common) - different} identical, {different} different; "
        f"only in {args.first}: {len(set(first) - set(second))}, only in {args.second}: "
        f"{len(set(second) - set(first))}"
    )
    if not common:
        return 2
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
