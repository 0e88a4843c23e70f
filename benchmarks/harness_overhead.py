"""Harness overhead: the same stage through the DockerRunner and the LocalRunner, and the cached re-run.

    .venv/bin/python benchmarks/harness_overhead.py --work /tmp/hmu-overhead            # the tiny world
    .venv/bin/python benchmarks/harness_overhead.py --work /tmp/hmu-default --world default --no-stages

1. `hmu bench --method original --runner docker` on the world (`tiny`: 200 motions, a base model trained for
   2 steps, an evaluator trained for 1 epoch, 2 repeats of 4 prompts per set; `default`: the embedded default
   of `make bench`), which prepares everything and fills the stage cache; timed, for the record.
2. The cached re-run: the same command again, unchanged, `--repeats` times (wall clock of the whole command,
   Python start included): every stage comes from the cache and nothing is logged anew.
3. Per stage: `describe`, then the very `unlearn`, `generate` and `evaluate` requests of that bench (read from
   the cache entries), each run `--repeats` times through the DockerRunner (the sandbox: a container of the
   content-tagged image) and through the LocalRunner (a subprocess of this Python), each time into a fresh
   output folder. The figure is the runner's wall clock (container creation and removal included for
   Docker), median of the repeats; the overhead is Docker's median minus local's.

The evaluate request is the Docker bench's: without the shared ground-truth cache (a container writes only
its output), so both runners compute the ground-truth statistics each time and do the same work. Threads:
OMP/OPENBLAS/MKL_NUM_THREADS are 1 in both (the stage environment sets them from the limits).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmark.api.contract import Resources
from benchmark.cli.bench import world_arguments
from benchmark.harness.bench import BenchConfig
from benchmark.harness.runners import DockerRunner, LocalRunner, ResourceLimits, StageInvocation
from benchmark.harness.store import ResultsStore, utc_now

TINY = world_arguments(BenchConfig.tiny(Path("results"), Path("results/cache")))
"""The tiny world's options (the test suite's `tiny_bench`)."""


def hmu_bench(results: Path, world: str) -> float:
    """Run `hmu bench --method original` on `results`; its wall-clock seconds (it must succeed)."""
    command = [
        sys.executable,
        "-m",
        "benchmark.cli.main",
        "bench",
        "--method",
        "original",
        "--runner",
        "docker",
    ]
    command += ["--results", str(results), "--no-gifs", "--reference", "none"]
    command += TINY if world == "tiny" else []
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def stage_timings(results: Path, work: Path, repeats: int) -> dict[str, dict[str, list[float]]]:
    """Seconds of each stage through each runner, `repeats` times (module docstring, point 3)."""
    (run,) = [run for run in ResultsStore(results).runs() if run.spec.method == "original"]
    images = run.provenance["images"]
    cache = (results / "cache").resolve()
    keys = {stage.stage: stage.key for stage in run.status.stages}
    method = ResourceLimits.from_resources(Resources(cpus=1, memory_gb=2, gpu="none", time_limit_s=600))
    evaluator = ResourceLimits(memory_bytes=4 * 2**30, cpus=1, wall_seconds=3600)
    runners = {"docker": DockerRunner(), "local": LocalRunner()}
    timings: dict[str, dict[str, list[float]]] = {}
    for kind in ("describe", "unlearn", "generate", "evaluate"):
        timings[kind] = {}
        for name, runner in runners.items():
            seconds = []
            for repeat in range(repeats):
                output = work / "stages" / f"{kind}-{name}-{repeat}"
                if output.exists():
                    shutil.rmtree(output)
                image = images["evaluator" if kind == "evaluate" else "method"]["reference"]
                outcome = runner.run(
                    StageInvocation(
                        verb=kind,  # type: ignore[arg-type]
                        output_dir=output,
                        input_dir=None if kind == "describe" else cache / kind / keys[kind] / "input",
                        image=image if name == "docker" else None,
                        method=None if kind == "evaluate" else "original",
                        limits=evaluator if kind == "evaluate" else method,
                        read_only_paths=() if kind == "describe" else (cache,),
                    )
                )
                if outcome.state != "ok":
                    sys.exit(f"{kind} through {name}: {outcome.state}: {outcome.message}")
                seconds.append(outcome.wall_seconds)
                print(f"  {kind:<8} {name:<6} #{repeat + 1}: {outcome.wall_seconds:.2f} s", flush=True)
            timings[kind][name] = seconds
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="work folder (results, stage outputs)")
    parser.add_argument("--world", choices=("tiny", "default"), default="tiny")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-stages", action="store_true", help="only the first bench and the re-runs")
    args = parser.parse_args()
    results = args.work / "results"
    began = utc_now()
    print(f"first bench ({args.world} world) ...", flush=True)
    first = hmu_bench(results, args.world)
    print(f"  {first:.1f} s", flush=True)
    reruns = []
    for repeat in range(args.repeats):
        reruns.append(hmu_bench(results, args.world))
        print(f"  cached re-run #{repeat + 1}: {reruns[-1]:.1f} s", flush=True)
    timings = {} if args.no_stages else stage_timings(results, args.work, args.repeats)
    print(f"\n{args.world} world, {began}, {platform.node()}, {platform.processor() or platform.machine()}")
    print(f"first bench: {first:.1f} s; cached re-run: median {statistics.median(reruns):.1f} s {reruns}")
    print(f"\n| stage | Docker (median of {args.repeats}) | local | overhead |")
    print("| --- | --- | --- | --- |")
    for kind, by_runner in timings.items():
        docker, local = statistics.median(by_runner["docker"]), statistics.median(by_runner["local"])
        print(f"| {kind} | {docker:.2f} s | {local:.2f} s | {docker - local:+.2f} s |")
    record = {"world": args.world, "date": began, "first": first, "reruns": reruns, "stages": timings}
    (args.work / "harness_overhead.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
