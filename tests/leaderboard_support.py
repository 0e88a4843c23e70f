"""Results for the leaderboard tests, made by the real bench on the tiny world of harness_support.tiny_bench
(once per test session, through the `leaderboard_world` fixture of conftest.py; its prepared inputs come from
the session's shared tiny-bench cache when another test made them first).

All through `hmu bench --runner local`, so that the bench's own site rendering is exercised:
1. the first bench: `original`, `lcr` (sweeping k over 4 and 16), `retrain` (a copy of `original` under the
   reference method's name, as tests/test_bench.py makes one) and `nan_liar` (harness_support: NaN motions
   behind a forged ok result, so its generate stage fails the harness's checks) into `results/`; its end
   renders `results/site/`;
2. a second bench of `original` (and its reference) into `second/`: the same run ids stored again as new
   records (nothing runs);
3. a code change to `original`, then a third bench of it into `results/`: a second run id for the same
   (method, sweep point, seed) cell; its end renders `results/site/` again, over the first site;
4. `bundle/`: a copy of the `lcr` run folders of `results/` with a MANIFEST.json, as `hmu submit` writes one.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from harness_support import bad_methods, tiny_bench

from benchmark.cli.bench import world_arguments
from benchmark.cli.leaderboard import load_renderer
from benchmark.cli.main import main
from benchmark.harness.bench import BenchConfig

REPO = Path(__file__).resolve().parents[1]

FAILING = "nan_liar"
"""The method that fails on purpose (harness_support.BAD_METHODS)."""


@dataclass(frozen=True)
class LeaderboardWorld:
    results: Path
    """The first and third benches' results folder, with the site the third one rendered."""
    second: Path
    """The second bench's results folder: the same run ids, stored again."""
    bundle: Path
    """A bundle: the lcr run folders of `results` and a MANIFEST.json."""
    exit_codes: tuple[int, ...]
    """The three benches' exit statuses."""


def _methods(root: Path) -> Path:
    bad_methods(root)
    for name in ("original", "lcr"):
        shutil.copytree(REPO / "methods" / name, root / name)
    lcr = root / "lcr" / "method.yaml"
    text = lcr.read_text()
    swept = [line for line in text.splitlines() if line.strip().startswith("k: [")]
    assert len(swept) == 1, f"{lcr}: expected one 'k: [...]' sweep line"
    lcr.write_text(text.replace(swept[0], "  k: [4, 16]"))
    shutil.copytree(REPO / "methods" / "original", root / "retrain")
    spec = root / "retrain" / "method.yaml"
    spec.write_text(spec.read_text().replace("name: original", "name: retrain"))
    return root


def _options(config: BenchConfig) -> list[str]:
    """The tiny world's configuration as `hmu bench` options."""
    options = ["--runner", "local", "--no-mlflow", "--no-gifs", "--cache", str(config.cache_root)]
    options += ["--workers", str(config.workers), "--threads", str(config.threads)]
    return options + world_arguments(config)


def _bench(options: list[str], methods: Path, results: Path, *names: str, site: bool = False) -> int:
    args = [
        "bench",
        *(arg for name in names for arg in ("--method", name)),
        *options,
        "--results",
        str(results),
    ]
    args += [] if site else ["--no-site"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HMU_METHODS_DIR", str(methods))
        patch.setenv("OMP_NUM_THREADS", "1")
        return main(args)


def bench_world(tmp_path_factory: pytest.TempPathFactory) -> LeaderboardWorld:
    """Make the world of the module docstring."""
    root = tmp_path_factory.mktemp("leaderboard")
    methods = _methods(root / "methods")
    options = _options(tiny_bench(tmp_path_factory, "unused"))
    results, second = root / "results", root / "second"
    first = _bench(options, methods, results, "original", "lcr", FAILING, site=True)
    again = _bench(options, methods, second, "original")
    with (methods / "original" / "method.py").open("a") as stream:
        stream.write("\n# A code change: a new local image digest, hence a new run id for the same cell.\n")
    changed = _bench(options, methods, results, "original", site=True)

    bundle = root / "bundle"
    picked = sorted(path for path in (results / "runs").iterdir() if path.name.startswith("lcr-"))
    manifest = {"schema": "test-bundle", "runs": []}
    for path in picked:
        shutil.copytree(path, bundle / "runs" / path.name)
        manifest["runs"].append(path.name)
    (bundle / "MANIFEST.json").write_text(json.dumps(manifest))
    return LeaderboardWorld(results, second, bundle, (first, again, changed))


def chromium_path() -> str | None:
    """Debian's chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def artifacts_dir() -> Path:
    """Where the browser tests keep their screenshots for CI: $HMU_CI_ARTIFACTS, else results/ci-artifacts/
    of the checkout (git-ignored, like every results folder)."""
    return Path(os.environ.get("HMU_CI_ARTIFACTS") or REPO / "results" / "ci-artifacts")


def renderer_part(name: str) -> ModuleType:
    """A module of the leaderboard renderer, loaded from the checkout by path as `hmu leaderboard` does."""
    return importlib.import_module(f"{load_renderer().__name__}.{name}")


def crowded_tradeoff(plots: ModuleType, count: int = 40) -> list:
    """Crowded: `count` runs of four methods, half of them in one tight cluster; and a reference."""
    rng = np.random.default_rng(0)
    methods = ["code_ban", "lcr", "rece", "uce"]
    points = [
        plots.Point(
            f"{methods[i % 4]}-sweep_point{i}",
            plots.PALETTE[i % 4],
            float(rng.uniform(0.5, 0.55) if i % 2 else rng.uniform(0, 1)),
            float(rng.uniform(0.2, 0.21) if i % 2 else rng.uniform(0.2, 0.5)),
            0.01,
            0.005,
            method=methods[i % 4],
        )
        for i in range(count)
    ]
    return [*points, plots.Point("retrain", plots.REFERENCE_COLOUR, 0.7, 0.2, None, None, "reference")]
