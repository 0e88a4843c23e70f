"""Time rendering the leaderboard site for 100 runs.

    .venv/bin/python benchmarks/leaderboard.py --source /tmp/lb-results      # a results folder of hmu bench
    .venv/bin/python benchmarks/leaderboard.py --source /tmp/lb-results --runs 100 --repeats 3

The 100 runs are copies of the real run folders of `--source` (for example the smoke world of the README:
`hmu bench --method all --motions 300 ... --results /tmp/lb-results`) under new run ids: copy k of a run gets
the seed `seed + k` (its run_spec.json is rewritten, its run id recomputed from it, and its reference points
at the copy of its reference run with the same seed), so every copy is a distinct table row with its own
metrics, samples and logs. Copies are made until there are `--runs` folders (the source runs included).

The render is `hmu leaderboard`'s (`render_site`, loaded from the checkout's leaderboard/ by path), timed from
reading the run folders to the finished site; the median of `--repeats` renders is reported, with the site's
size and pages.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmark.cli.leaderboard import load_renderer  # noqa: E402
from benchmark.harness.spec import RunSpec  # noqa: E402
from benchmark.harness.store import RUN_SPEC_FILE, ResultsStore  # noqa: E402


def _copy(source: Path, target: Path, spec: RunSpec) -> None:
    shutil.copytree(source, target)
    for folder, _, files in os.walk(target):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    (target / RUN_SPEC_FILE).write_text(json.dumps(spec.to_json(), indent=1) + "\n", encoding="utf-8")


def make_runs(source: Path, destination: Path, count: int) -> tuple[int, int]:
    """Fill `destination/runs/` with `count` run folders: the source's, then copies under new seeds.
    Returns (source runs, copies)."""
    runs = ResultsStore(source).runs()
    if not runs:
        raise SystemExit(f"{source}: no run folders (run hmu bench first)")
    (destination / "runs").mkdir(parents=True)
    made = 0
    for run in runs:
        if made == count:
            break
        _copy(run.path, destination / "runs" / run.run_id, run.spec)
        made += 1
    copies = 0
    shift = max(run.spec.seed for run in runs) + 1
    while made < count:
        renamed: dict[str, str] = {}
        # References first: a copy's reference is the copy of its reference run (same new seed).
        for run in sorted(runs, key=lambda r: r.spec.reference is not None):
            if made == count:
                break
            reference = run.spec.reference
            spec = dataclasses.replace(
                run.spec,
                seed=run.spec.seed + shift,
                reference=renamed.get(reference, reference) if reference is not None else None,
            )
            renamed[run.run_id] = spec.run_id
            _copy(run.path, destination / "runs" / spec.run_id, spec)
            made += 1
            copies += 1
        shift += 1
    return len(runs), copies


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, required=True, help="a results folder written by hmu bench")
    parser.add_argument("--runs", type=int, default=100, help="run folders to render (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="renders timed (default 3)")
    args = parser.parse_args()

    renderer = load_renderer()
    with tempfile.TemporaryDirectory(prefix="hmu-leaderboard-bench-") as scratch:
        results = Path(scratch) / "results"
        real, copies = make_runs(args.source, results, args.runs)
        print(
            f"{args.runs} run folders: {real} real ones from {args.source} and {copies} copies of them "
            "under new run ids (seed shifted, run_spec.json rewritten, references remapped)"
        )
        seconds = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            report = renderer.render_site([results], results / "site")
            seconds.append(time.perf_counter() - began)
        site = results / "site"
        largest = max((path for path in site.rglob("*.html")), key=lambda path: path.stat().st_size)
        print(
            f"render: median {statistics.median(seconds):.2f} s over {args.repeats} renders "
            f"({', '.join(f'{s:.2f}' for s in seconds)}); {report.runs} runs ({report.failed} not ok), "
            f"{report.tables} table(s), {len(report.pages)} pages, {_size(site) / 1e6:.1f} MB "
            f"(largest page {largest.relative_to(site)}: {largest.stat().st_size / 1e6:.1f} MB)"
        )


if __name__ == "__main__":
    main()
