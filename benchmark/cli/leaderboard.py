"""`hmu leaderboard`: render the static leaderboard site from results folders.

    hmu leaderboard                                        # results/ -> results/site/
    hmu leaderboard --results results --out site/
    hmu leaderboard --results results --results bundles/alice --out site/

The renderer is the checkout's `leaderboard/` folder, loaded by its path like a method folder (see
benchmark/api/registry.py): the library never imports it by name, so the dependency arrow points one way
(leaderboard -> benchmark). `--site-dir` or $HMU_LEADERBOARD_DIR names another renderer folder.
`hmu bench` renders `<results>/site` at its end through `render_results_site`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import sys
import types
from pathlib import Path

from benchmark.errors import HMUError

ENV_SITE_DIR = "HMU_LEADERBOARD_DIR"
"""Environment variable naming the renderer folder (default: the checkout's `leaderboard/`)."""

CHECKOUT_SITE_DIR = Path(__file__).resolve().parents[2] / "leaderboard"
"""The renderer of a source checkout."""

logger = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  hmu leaderboard                                    # results/ -> results/site/
  hmu leaderboard --results results --out site/
  hmu leaderboard --results results --results bundles/alice --out site/   # merged; duplicates are named
  make serve                                         # serve results/site on http://127.0.0.1:8000

A results folder is any folder with runs/ inside (results/, or a bundle of hmu submit). The site works
opened from disk (file://) too: open site/index.html.
"""


def site_dir(given: Path | None = None) -> Path:
    """The renderer folder: `given`, else $HMU_LEADERBOARD_DIR, else the checkout's `leaderboard/`."""
    folder = given or Path(os.environ.get(ENV_SITE_DIR, "") or CHECKOUT_SITE_DIR)
    if not (folder / "__init__.py").is_file():
        raise HMUError(
            f"{folder}: no leaderboard renderer there (no __init__.py); "
            f"pass --site-dir or set ${ENV_SITE_DIR}"
        )
    return folder


def load_renderer(folder: Path | None = None) -> types.ModuleType:
    """Import the renderer folder as a package (once per folder) and return it; it exposes `render_site`.
    The package name carries a hash of the folder's path, as method packages do."""
    folder = site_dir(folder).resolve()
    name = "hmu_leaderboard_" + hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise HMUError(f"{folder}: cannot import the leaderboard renderer")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for loaded in [key for key in sys.modules if key == name or key.startswith(name + ".")]:
            del sys.modules[loaded]
        raise
    return module


def render(results: list[Path], out: Path, folder: Path | None = None) -> object:
    """Render the site of `results` into `out`; returns the renderer's SiteReport."""
    return load_renderer(folder).render_site(results, out)


def render_results_site(results: Path) -> int:
    """The end of `hmu bench`: render `<results>/site`. A failure is reported, never raised: the bench's
    runs are stored already, and the summary is printed before. Returns 0, or 1 when the site failed."""
    out = results / "site"
    try:
        report = render([results], out)
    except Exception as error:  # any fault of the renderer: the bench's results stand
        logger.debug("the leaderboard failed", exc_info=True)
        print(
            f"hmu bench: the leaderboard site could not be rendered ({type(error).__name__}: {error}); "
            f"the runs are stored under {results / 'runs'}. Render it again with: "
            f"hmu leaderboard --results {results} --out {out}",
            file=sys.stderr,
        )
        return 1
    print(f"leaderboard: {report.index} ({report.runs} runs, {report.seconds:.1f} s; make serve)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        help="render the static leaderboard site from results folders",
        description="Render the leaderboard: one table per task (forget vs. the reference, retain, cost,\n"
        "95% CIs, an aggregate rank), trade-off plots, sweep curves, animated sample motions, failed runs\n"
        "with their logs, and CSV/JSON downloads with provenance. Reads only the run folders.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--results",
        action="append",
        type=Path,
        metavar="DIR",
        help="a results folder or bundle (any folder with runs/ inside); repeatable (default results/)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="the site folder (default <first results>/site)"
    )
    parser.add_argument(
        "--site-dir",
        type=Path,
        metavar="DIR",
        help=f"the renderer folder (default ${ENV_SITE_DIR}, else the checkout's leaderboard/)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = args.results or [Path("results")]
    out = args.out or results[0] / "site"
    report = render(results, out, args.site_dir)
    print(
        f"{report.index}: {report.tables} table(s), {report.runs} runs ({report.failed} not ok), "
        f"{len(report.pages)} pages in {report.seconds:.1f} s"
    )
    return 0
