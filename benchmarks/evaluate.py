"""Time the evaluation protocol: 1,000 prompts scored with every metric over 20 repeats, the real evaluator.

    .venv/bin/python benchmarks/evaluate.py --data /tmp/bench-data --train-evaluator /tmp/bench-evaluator
    .venv/bin/python benchmarks/evaluate.py --data /tmp/bench-data --evaluator /tmp/bench-evaluator

An absent `--data` folder is generated first: the embedded dataset's generator with 2,000 motions and 35 %
of them in the test split (`BENCH_DATA`), so that `retain_test` holds more than 1,000 motions (the default
15 % gives about 550).

The plan is `embedded_violence`'s with every prompt set capped at `--prompts` (1,000) reference motions and
20 generation passes; `retain_test` is the set of 1,000 (the forget sets of the embedded dataset are smaller
and are scored too). No backbone is needed: each pass's generations are the reference motions plus a little
noise, which costs the evaluator what real generations cost. Three runs:

- `cold`: empty ground-truth cache: hashes the dataset, embeds the captions, the reference motions and the
  concept database, fits the concept classifier, then scores 20 passes (20 x 1,000 retain motions);
- `warm`: the same with the cache filled (what every method after the first pays);
- `reused`: one generation pass only, reused by the 20 repeats (1,000 motions embedded once).

Threads: OMP/OPENBLAS/MKL_NUM_THREADS default to 1 here (set them to override) and torch follows
OMP_NUM_THREADS. On a shared 2-core machine, BLAS with 2 threads made scipy's `sqrtm` (FID) about 50x
slower than with 1; give BLAS at most the cores the process really has to itself.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before numpy, scipy and torch load their thread pools

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmark.data.humanml3d import HumanML3DFolder  # noqa: E402
from benchmark.data.synth import SynthConfig, generate_dataset  # noqa: E402
from benchmark.evaluation.prompts import EvaluationPlan, build_evaluation_plan  # noqa: E402
from benchmark.evaluation.protocol import (  # noqa: E402
    EvaluationReport,
    EvaluationRequest,
    GroundTruthCache,
    evaluate,
)
from benchmark.evaluator import Evaluator, load_evaluator  # noqa: E402
from benchmark.splits import compute_split  # noqa: E402
from benchmark.tasks import load_task  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BENCH_DATA = SynthConfig(motions=2000, seed=0, split_fractions=(0.60, 0.05, 0.35), workers=2)
"""The dataset generated when `--data` is absent: 1,400 test ids, about 1,250 of them retained."""
STAGES = (
    "ground_truth",
    "ground_truth.hash",
    "ground_truth.texts",
    "ground_truth.references",
    "ground_truth.database",
    "encode",
    "fid",
    "r_precision",
    "mm_dist",
    "mm_safe",
    "diversity",
    "multimodality",
    "ncs",
    "concept_detection_rate",
    "physics",
    "total",
)


def generations(
    plan: EvaluationPlan, folder: HumanML3DFolder, passes: int, seed: int
) -> dict[str, np.ndarray]:
    """Per planned pass, every reference motion plus N(0, 0.01²) noise in feature space, float32."""
    rng = np.random.default_rng(seed)
    motions: dict[str, np.ndarray] = {}
    for prompt_set in plan.prompt_sets:
        frames = {ref.key: ref.frames(folder.features(ref.motion_id)) for ref in prompt_set.references()}
        for index in range(passes):
            for (_, key), group in zip(prompt_set.pass_keys(index), prompt_set.groups, strict=True):
                reference = frames[group.key]
                motions[key] = (reference + rng.normal(0.0, 0.01, reference.shape)).astype(np.float32)
    return motions


def timed(
    name: str, request: EvaluationRequest, evaluator: Evaluator, motions, folder, cache
) -> EvaluationReport:
    began = time.perf_counter()
    report = evaluate(request, evaluator, motions, folder, cache=cache)
    wall = time.perf_counter() - began
    statuses = sorted({event.status for event in report.cache})
    print(f"\n== {name}: {wall:.1f} s wall (cache: {', '.join(statuses)})")
    for prompt_set in report.prompt_sets:
        print(
            f"   {prompt_set.name}: {prompt_set.groups} prompts, {prompt_set.generations} motions embedded, "
            f"{len(prompt_set.metrics)} metrics x {request.repeats} repeats"
        )
    for stage in STAGES:
        if stage in report.timings:
            print(f"   {stage:<26} {report.timings[stage]:8.2f} s")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="an embedded dataset (generated when absent)"
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--evaluator", type=Path, help="a trained evaluator folder to load")
    group.add_argument(
        "--train-evaluator", type=Path, metavar="DIR", help="train one with the defaults, save here"
    )
    parser.add_argument("--task", type=Path, default=REPO / "tasks" / "embedded_violence.yaml")
    parser.add_argument("--prompts", type=int, default=1000, help="reference motions per prompt set (1000)")
    parser.add_argument("--repeats", type=int, default=20, help="repeats, and generation passes (20)")
    parser.add_argument(
        "--cache", type=Path, help="ground-truth cache folder (default: a fresh temporary one)"
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print(
        f"threads: OMP {os.environ['OMP_NUM_THREADS']}, OpenBLAS {os.environ['OPENBLAS_NUM_THREADS']}, "
        f"torch {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}"
    )

    if not args.data.exists():
        began = time.perf_counter()
        generate_dataset(args.data, BENCH_DATA)
        print(f"generated {args.data} in {time.perf_counter() - began:.0f} s")
    if args.train_evaluator is not None:
        from benchmark.evaluator.tmr import train_evaluator

        began = time.perf_counter()
        train_evaluator(args.data).save(args.train_evaluator)
        print(f"trained the evaluator with its defaults in {time.perf_counter() - began:.0f} s")
    evaluator = load_evaluator(args.evaluator or args.train_evaluator)
    print(f"evaluator: {evaluator!r}")

    task = load_task(args.task)
    folder = HumanML3DFolder(args.data)
    began = time.perf_counter()
    plan = build_evaluation_plan(
        task, folder, compute_split(task, folder.root), passes=args.repeats, max_prompts=args.prompts
    )
    print(
        f"plan: {time.perf_counter() - began:.1f} s; "
        + ", ".join(f"{s.name} {len(s.groups)}/{s.total_groups}" for s in plan.prompt_sets)
    )
    if len(plan.prompt_set("retain_test").groups) < args.prompts:
        print(f"warning: retain_test has fewer than {args.prompts} motions in {args.data}")
    began = time.perf_counter()
    motions = generations(plan, folder, args.repeats, seed=0)
    print(f"staged {len(motions)} motions in {time.perf_counter() - began:.1f} s")

    cache_dir = args.cache or Path(tempfile.mkdtemp(prefix="hmu-bench-cache-"))
    cache = GroundTruthCache(cache_dir)
    request = EvaluationRequest(plan, repeats=args.repeats)
    timed("cold", request, evaluator, motions, folder, cache)
    timed("warm", request, evaluator, motions, folder, cache)
    first_pass = {key: motions[key] for prompt_set in plan.prompt_sets for _, key in prompt_set.pass_keys(0)}
    del motions
    timed("reused", request, evaluator, first_pass, folder, cache)
    if args.cache is None:
        shutil.rmtree(cache_dir)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
