"""The leaderboard site: a static site rendered from the results store, never edited by hand.

    >>> from pathlib import Path
    >>> report = render_site([Path("results")], Path("results/site"))     # hmu leaderboard --results results

Not a package of the library: `hmu leaderboard` (benchmark/cli/leaderboard.py) loads this folder by its path,
so that `benchmark` never imports it by name (tests/test_architecture.py). It reads run folders through
`benchmark.harness.store` and turns sample motions into joints with `benchmark.motion`.

- `results`: reading and merging results folders and bundles; tables, cells, the run each cell shows;
- `scores`: metric columns, CIs, per-metric ranks with ties where CIs overlap, the aggregate rank;
- `plots`: the trade-off and sweep SVGs;
- `motions`: sample motions as compact joint arrays for the in-page player;
- `downloads`: results.csv and results.json with provenance;
- `site`: the jinja2 rendering (`templates/`, `assets/`).
"""

from .results import LeaderboardError
from .site import SiteReport, render_site

__all__ = ["LeaderboardError", "SiteReport", "render_site"]
