"""The Slurm runner against the local runner: one tiny bench, its stages as local processes and as Slurm jobs.

    bash ci/start-slurm.sh                                    # a one-node cluster (root), or any cluster
    .venv/bin/python benchmarks/slurm.py --work /tmp/hmu-slurm-bench [--runtime none --runtime docker]

The bench: `original` on seeds 0 and 1 (6 stages: two each of unlearn, generate, evaluate), the tiny world
(200 motions, a base model trained for 2 steps, an evaluator trained for 1 epoch, 2 repeats of 4 prompts per
set), `--workers` stages at a time (default 2), no reference run, no MLflow. First a local bench prepares the
shared inputs (not counted); then the same bench with `fresh` (every stage runs again, the prepared inputs
stay) through the local runner, then through the Slurm runner with each runtime asked for.

For each it prints the wall clock of the stage phase (`BenchSummary.timings['stages']`: from the first stage
started to the last one ended) and the sum of the stages' own seconds; for Slurm also how many jobs ran at
once (from each job's StartTime and EndTime, whole seconds) and the wait from submission to start. Last, it
checks that every metric of every run equals the local runner's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

from benchmark.harness.bench import BenchConfig, BenchSummary, run_bench
from benchmark.harness.slurm import SlurmCLI, SlurmSettings
from benchmark.harness.store import utc_now

REPO = Path(__file__).resolve().parents[1]


def tiny(work: Path, workers: int) -> BenchConfig:
    return BenchConfig.tiny(
        work / "results-prepare",
        work / "cache",
        methods=("original",),
        seeds=(0, 1),
        runner="local",
        workers=workers,
        track=False,
        reference_method=None,
        methods_dirs=(REPO / "methods",),
    )


def _epoch(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


def jobs(summary: BenchSummary, slurm: SlurmCLI) -> list[dict[str, float]]:
    """Submit, start and end times of every stage's job (scontrol remembers them for MinJobAge, 300 s)."""
    times = []
    for run in summary.runs:
        for kind in ("unlearn", "generate", "evaluate"):
            record = json.loads((run.path / "logs" / kind / "slurm-job.json").read_text())
            fields = slurm.show_job(record["job_id"]) or {}
            times.append({name: _epoch(fields[f"{name}Time"]) for name in ("Submit", "Start", "End")})
    return times


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:  # an end sorts before a start at the same second: touching is not overlapping
        running += step
        most = max(most, running)
    return most


def metrics(summary: BenchSummary) -> dict[str, float]:
    """`<seed>.<prompt set>.<metric>` -> value, over the bench's runs."""
    values = {}
    for run in summary.runs:
        data = json.loads((run.path / "metrics.json").read_text())
        for set_name, prompt_set in data["prompt_sets"].items():
            for name, entry in prompt_set["metrics"].items():
                if entry["value"] is not None:
                    values[f"s{run.seed}.{set_name}.{name}"] = entry["value"]
    return values


def largest_difference(values: dict[str, float], reference: dict[str, float]) -> float:
    """The largest relative difference between two benches' metrics (they must have the same ones)."""
    if values.keys() != reference.keys():
        raise SystemExit(f"different metrics: {sorted(values.keys() ^ reference.keys())}")
    return max(abs(values[key] - reference[key]) / max(abs(reference[key]), 1e-12) for key in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/hmu-slurm-bench"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--runtime", action="append", choices=("none", "docker"), help="default: none, docker"
    )
    parser.add_argument("--conf", type=Path, help="slurm.conf (default $SLURM_CONF)")
    args = parser.parse_args()
    runtimes = args.runtime or ["none", "docker"]
    slurm = SlurmCLI(args.conf)
    why = slurm.why_not()
    if why is not None:
        raise SystemExit(f"{why} (bash ci/start-slurm.sh; export SLURM_CONF=...)")
    args.work.mkdir(parents=True, exist_ok=True)
    args.work.chmod(0o755)  # the containers' user reads the cache
    base = tiny(args.work, args.workers)
    quiet = lambda line: None  # noqa: E731

    began = time.perf_counter()
    prepared = run_bench(base, echo=quiet)
    print(f"prepare + first local bench: {time.perf_counter() - began:.1f} s ({dict(prepared.timings)})")

    summaries: dict[str, BenchSummary] = {}
    rows = []
    for label in ["local", *(f"slurm/{runtime}" for runtime in runtimes)]:
        config = dataclasses.replace(
            base, results_dir=args.work / f"results-{label.replace('/', '-')}", fresh=True
        )
        if label != "local":
            runtime = label.split("/")[1]
            config = dataclasses.replace(
                config, runner="slurm", slurm=SlurmSettings(runtime=runtime, conf=args.conf, poll_seconds=0.5)
            )
        began = time.perf_counter()
        summary = summaries[label] = run_bench(config, echo=quiet)
        total = time.perf_counter() - began
        if not summary.ok:
            raise SystemExit(f"{label}: the bench failed: {[run.status for run in summary.runs]}")
        stage_sum = sum(seconds for name, seconds in summary.timings.items() if name.startswith("stage."))
        row = f"| {label} | {summary.timings['stages']:.1f} s | {stage_sum:.1f} s | {total:.1f} s |"
        if label == "local":
            row += f" {args.workers} (workers) | - |"
        else:
            times = jobs(summary, slurm)
            at_once = most_at_once([(job["Start"], job["End"]) for job in times])
            waits = sorted(job["Start"] - job["Submit"] for job in times)
            row += f" {at_once} | {waits[len(waits) // 2]:.0f} s median, {waits[-1]:.0f} s max |"
        rows.append(row)
        print(row, flush=True)

    local = metrics(summaries["local"])
    for label, summary in summaries.items():
        difference = largest_difference(metrics(summary), local)
        print(
            f"{label}: {len(local)} metrics, largest relative difference to the local runner's: "
            f"{difference:.1e}"
        )

    print(f"\n{utc_now()}, {platform.node()}, {platform.processor() or platform.machine()}")
    print(
        "| runner | stage phase (wall) | sum of stage seconds | whole bench | most stages at once "
        "| wait to start |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
