"""Render the static site: jinja2 templates filled from the results store, with SVG plots, embedded motion
data and downloads. Nothing in the output is written by hand, and nothing in it loads from the network.

    >>> report = render_site([Path("results")], Path("results/site"))
    >>> report.index
    PosixPath('results/site/index.html')

The site:

    index.html               one table per task (forget vs. reference, retain, cost, CIs, aggregate rank),
                             each task's trade-off plot, every failed run with its state and log tail
    tasks/<task>.html        the task's tables, trade-off plots (any forget metric against any retain
                             metric), animated sample motions (original / unlearned / reference), failed runs
    methods/<method>.html    parameters, versions and images, sweep results and sweep curves, every run
    results.csv results.json every result with its provenance
    assets/                  site.css, site.js (sorting, filtering, the stick-figure player)
    motions/<run id>.js      each shown run's sample motions as joint positions, loaded when the player
                             shows that run

Pages embed their data (tables and plots in the HTML, the motion player's index as JSON in a script element)
or load it as scripts, so the site works opened straight from disk (file://): no fetch(), no CDN. The output
is rendered into a fresh folder beside `out` and then put in its place; an existing `out` is replaced only
when it is a site this renderer made (it holds `.hmu-site`).
Rendering the same results twice gives the same bytes (no clock in the pages: dates are the runs' own).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .downloads import write_downloads
from .motions import MOTIONS_DIR, SKELETON, motion_script, sample_clip, sample_names
from .plots import PALETTE, REFERENCE_COLOUR, Axis, Curve, Line, Point, fmt, sweep_svg, tradeoff_svg
from .results import Board, Cell, LeaderboardError, Run, Table, collect, natural_key
from .scores import GROUP_TITLES, Column, Score, ScoredTable, score_table

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
ASSETS = HERE / "assets"
MARKER = ".hmu-site"
"""The file that marks a folder as a rendered site (so that re-rendering may replace it)."""

ORIGINAL_METHOD = "original"
"""The method that leaves the base model unchanged (`methods/original`): the "before" of the motion
panels and a line on the sweep curves."""

METRIC_NAMES: dict[str, str] = {
    "fid": "FID",
    "r_precision_top1": "R@1",
    "r_precision_top2": "R@2",
    "r_precision_top3": "R@3",
    "mm_dist": "MM-Dist",
    "mm_safe": "MM-Safe",
    "diversity": "Diversity",
    "multimodality": "MModality",
    "notox_accuracy": "NoTox acc.",
    "concept_detection_rate": "Concept rate",
    **{f"ncs_at_{k}": f"NCS@{k}" for k in (1, 2, 3, 5, 10)},
}
"""Display names of metrics; any other metric shows its id."""

SOURCE_NAMES: dict[str, str] = {
    "forget": "named",
    "implicit": "implicit",
    "retain": "harmless",
    "list": "listed",
}
"""How the motion panels name a prompt set by its source: the concept named in the prompt, described
without naming it, or a prompt without the concept."""


@dataclass(frozen=True)
class SiteReport:
    """What a render wrote."""

    out: Path
    """The site folder."""
    pages: tuple[Path, ...]
    """Every HTML page, relative to `out`."""
    runs: int
    """Run folders read."""
    failed: int
    """Of which not ok."""
    tables: int
    """Task tables."""
    seconds: float
    """Wall time of the render."""

    @property
    def index(self) -> Path:
        return self.out / "index.html"


# ----------------------------------------------------------------------------- helpers for templates


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def ci(value: float) -> str:
    """A CI half-width: two significant digits."""
    if value == 0:
        return "0"
    return fmt(value) if abs(value) >= 10 else f"{value:.2g}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def memory(value: int | None) -> str:
    if value is None:
        return "—"
    if value < 2**30:
        return f"{value / 2**20:.0f} MiB"
    return f"{value / 2**30:.2f} GiB"


def _colours(board: Board, tables: Sequence[ScoredTable]) -> dict[str, str]:
    reference = {cell.method for t in tables for cell in t.table.cells if cell.reference}
    others = [m for m in board.methods if m not in reference]
    colours = {method: PALETTE[i % len(PALETTE)] for i, method in enumerate(others)}
    colours.update({method: REFERENCE_COLOUR for method in reference})
    return colours


def _page_name(name: str) -> str:
    return quote(name, safe="") + ".html"


# ----------------------------------------------------------------------------- plots of a table


def _axis(column: Column) -> Axis:
    if column.direction == "reference":
        return Axis(f"{column.prompt_set} {metric_name(column.metric)}: distance to reference", "lower")
    return Axis(f"{column.prompt_set} {metric_name(column.metric)}", column.direction)  # type: ignore[arg-type]


def _ranked(score: Score | None) -> tuple[float, float] | None:
    ranked = score.ranked if score is not None else None
    return (ranked[0], ranked[1]) if ranked is not None else None


def tradeoff_plots(scored: ScoredTable, colours: Mapping[str, str]) -> list[dict[str, Any]]:
    """A trade-off plot for every (rankable forget column, rankable retain column) pair, headline first:
    the first pair in table order. Reference rows sit at distance 0 on a distance axis."""
    rankable = scored.rankable()
    xs = [c for c in rankable if c.group == "forget"]
    ys = [c for c in rankable if c.group == "retain"]
    plots = []
    for x_column in xs:
        for y_column in ys:
            points = []
            for row in scored.rows:
                if not row.cell.chosen.ok:
                    continue
                y_score = _ranked(row.scores.get(y_column.key))
                if y_score is None and not row.cell.reference:
                    continue
                if row.cell.reference:
                    x_value = (
                        (0.0, 0.0)
                        if x_column.direction == "reference"
                        else _ranked(row.scores.get(x_column.key))
                    )
                    y_value = (0.0, 0.0) if y_column.direction == "reference" else y_score
                    if x_value is None or y_value is None:
                        continue
                    points.append(
                        Point(
                            row.cell.label, REFERENCE_COLOUR, x_value[0], y_value[0], None, None, "reference"
                        )
                    )
                    continue
                x_score = _ranked(row.scores.get(x_column.key))
                if x_score is None or y_score is None:
                    continue
                label = row.cell.label + (f" s{row.cell.seed}" if _seeds(scored.table) > 1 else "")
                points.append(
                    Point(
                        label,
                        colours[row.cell.method],
                        x_score[0],
                        y_score[0],
                        x_score[1],
                        y_score[1],
                        method=row.cell.method,
                    )
                )
            if not points:
                continue
            title = f"{scored.table.title}: {x_column.key} against {y_column.key}"
            plots.append(
                {
                    "x": x_column.key,
                    "y": y_column.key,
                    "svg": tradeoff_svg(points, _axis(x_column), _axis(y_column), title),
                }
            )
    return plots


def headline_plots(plots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The index's plots: for each forget prompt set, its first forget metric against the first retain
    metric (named and implicit forgetting, each against what is kept)."""
    if not plots:
        return []
    retain = plots[0]["y"]
    chosen: dict[str, dict[str, Any]] = {}
    for plot in plots:
        prompt_set = plot["x"].split(".", 1)[0]
        if plot["y"] == retain and prompt_set not in chosen:
            chosen[prompt_set] = plot
    return list(chosen.values())


def _seeds(table: Table) -> int:
    return len({cell.seed for cell in table.cells})


def _numeric_parameters(cells: Sequence[Cell]) -> list[str]:
    """The parameters that vary between the cells' runs and are numbers (the swept ones)."""
    names: dict[str, set[Any]] = {}
    for cell in cells:
        for name, value in cell.chosen.spec.parameters.items():
            names.setdefault(name, set()).add(json.dumps(value, sort_keys=True))
    swept = []
    for name, values in names.items():
        decoded = [json.loads(v) for v in values]
        if len(decoded) > 1 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in decoded):
            swept.append(name)
    return sorted(swept)


def sweep_plots(scored: ScoredTable, method: str, colours: Mapping[str, str]) -> list[dict[str, Any]]:
    """For each swept numeric parameter of `method` in this table, one curve plot per declared column:
    the value against the parameter, with the reference's and the original model's values as lines."""
    cells = [c for c in scored.table.cells if c.method == method and c.chosen.ok]
    plots = []
    for parameter in _numeric_parameters(cells):
        for column in scored.columns:
            curves = []
            for seed in sorted({c.seed for c in cells}):
                points = []
                for cell in cells:
                    score = scored.row(cell).scores.get(column.key)
                    value = cell.chosen.spec.parameters.get(parameter)
                    if cell.seed == seed and score is not None and value is not None:
                        points.append((float(value), score.value, score.ci95))
                if len(points) >= 2:
                    label = method + (f" s{seed}" if _seeds(scored.table) > 1 else "")
                    curves.append(Curve(label, colours[method], tuple(points)))
            if not curves:
                continue
            lines = []
            first = next(iter(scored.row(c).scores.get(column.key) for c in cells), None)
            if first is not None and first.reference_value is not None:
                lines.append(Line("reference", first.reference_value))
            original = scored.table.cell(ORIGINAL_METHOD, cells[0].seed)
            if original is not None and original.chosen.ok and method != ORIGINAL_METHOD:
                score = scored.row(original).scores.get(column.key)
                if score is not None:
                    lines.append(Line(ORIGINAL_METHOD, score.value, dash="2 3", colour="#888888"))
            axis = Axis(f"{column.prompt_set} {metric_name(column.metric)}", None)
            if column.direction != "reference":
                axis = Axis(axis.title, column.direction)  # type: ignore[arg-type]
            title = f"{method} on {scored.table.title}: {column.key} against {parameter}"
            plots.append(
                {
                    "parameter": parameter,
                    "column": column,
                    "svg": sweep_svg(curves, parameter, axis, lines, title),
                }
            )
    return plots


# ----------------------------------------------------------------------------- motions of a table


def motion_block(scored: ScoredTable) -> dict[str, Any] | None:
    """The data of a table's motion player: the prompt rows (named, implicit, harmless), per unlearned run
    the original and reference runs of its seed, and the clips of every ok run with samples (written to
    their own scripts: `write_motion_scripts`)."""
    table = scored.table
    clips: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    for cell in table.cells:
        run = cell.chosen
        if not run.ok:
            continue
        for name in sample_names(run.path):
            clip = sample_clip(run.path, name)
            if clip is not None:
                clips.setdefault(run.run_id, {})[name] = clip
                if name not in names:
                    names.append(name)
    if not clips:
        return None

    def run_of(method_cell: Cell | None) -> str | None:
        if method_cell is None or method_cell.chosen.run_id not in clips:
            return None
        return method_cell.chosen.run_id

    choices = []
    ranked = sorted(
        (row for row in scored.rows if row.cell.chosen.run_id in clips),
        key=lambda r: (r.rank is None, r.rank or 0, r.cell.method, r.cell.sweep, r.cell.seed),
    )
    for row in ranked:
        cell = row.cell
        if cell.reference or cell.method == ORIGINAL_METHOD:
            continue
        reference = next((c for c in table.cells if c.reference and c.seed == cell.seed), None)
        choices.append(
            {
                "run": cell.chosen.run_id,
                "label": f"{cell.label} · seed {cell.seed}" + (f" · rank {row.rank}" if row.rank else ""),
                "original": run_of(table.cell(ORIGINAL_METHOD, cell.seed)),
                "reference": run_of(reference),
            }
        )
    if not choices:  # nothing unlearned: show what there is in the middle
        original = table.cell(ORIGINAL_METHOD, table.cells[0].seed)
        middle = run_of(original) or next(iter(clips))
        choices.append({"run": middle, "label": "no unlearned run", "original": None, "reference": None})
    metrics_sources: dict[str, str] = {}
    for cell in table.cells:
        if cell.chosen.metrics is not None:
            for name, prompt_set in cell.chosen.metrics.get("prompt_sets", {}).items():
                metrics_sources.setdefault(name, str(prompt_set.get("source", "")))
    rows = [
        {
            "sample": name,
            "title": SOURCE_NAMES.get(metrics_sources.get(name, ""), name),
            "prompt_set": name,
            "text": next((c[name]["text"] for c in clips.values() if name in c), ""),
        }
        for name in names
    ]
    fps = table.cells[0].chosen.provenance("data", "fps") or 20.0
    return {
        "id": f"motions-{table.key.slug}",
        "rows": rows,
        "choices": choices,
        "clips": clips,
        "data": {
            "fps": fps,
            "skeleton": SKELETON,
            "choices": choices,
            "scripts": {run: f"{MOTIONS_DIR}/{quote(run)}.js" for run in clips},
        },
    }


def write_motion_scripts(block: Mapping[str, Any], out: Path) -> None:
    """One script per run of a motion block, in `out`/motions/."""
    folder = out / MOTIONS_DIR
    folder.mkdir(exist_ok=True)
    for run, clips in block["clips"].items():
        (folder / f"{run}.js").write_text(motion_script(run, clips), encoding="utf-8")


# ----------------------------------------------------------------------------- rendering


def _environment() -> Any:
    try:
        import jinja2
    except ImportError as error:
        raise LeaderboardError(
            "the leaderboard needs jinja2: pip install -e '.[bench]' (or pip install jinja2)"
        ) from error
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "separators": (",", ":")}
    env.filters.update(
        fmt=fmt, ci=ci, seconds=seconds, memory=memory, metric_name=metric_name, page=_page_name
    )
    env.globals.update(GROUP_TITLES=GROUP_TITLES)
    return env


def _prepare_out(out: Path) -> Path:
    """A fresh folder beside `out` to render into; `out` must be absent, empty, or a site of ours."""
    if out.exists():
        if not out.is_dir():
            raise LeaderboardError(f"{out}: exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise LeaderboardError(
                f"{out}: a folder that is not a rendered site (no {MARKER}); refusing to replace it"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the site from a web server's user
    return staging


def _swap(staging: Path, out: Path) -> None:
    """Put the rendered folder in place of `out` (the old one goes only once the new one is complete)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
    os.rename(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def render_site(results: Sequence[Path], out: Path) -> SiteReport:
    """Read the results folders and write the site into `out` (module docstring)."""
    began = time.perf_counter()
    board = collect([Path(path) for path in results])
    env = _environment()
    scored = [score_table(table) for table in board.tables]
    colours = _colours(board, scored)
    staging = _prepare_out(out)
    try:
        pages = _write_pages(env, board, scored, colours, staging)
        shutil.copytree(ASSETS, staging / "assets")
        write_downloads(board, staging)
        (staging / MARKER).write_text(
            "rendered by hmu leaderboard; replaced on every render\n", encoding="utf-8"
        )
        _swap(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return SiteReport(
        out=out,
        pages=tuple(pages),
        runs=len(board.runs),
        failed=len(board.failed),
        tables=len(board.tables),
        seconds=time.perf_counter() - began,
    )


def _write(env: Any, template: str, path: Path, **context: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(env.get_template(template).render(**context), encoding="utf-8")


def _write_pages(
    env: Any, board: Board, scored: list[ScoredTable], colours: Mapping[str, str], out: Path
) -> list[Path]:
    shown = {cell.chosen.run_id for table in board.tables for cell in table.cells}
    common = {
        "board": board,
        "colours": colours,
        "shown": shown,
        "tasks": board.tasks,
        "methods": board.methods,
    }
    plots = [tradeoff_plots(s, colours) for s in scored]
    headline = [headline_plots(table_plots) for table_plots in plots]
    pages = [Path("index.html")]
    _write(env, "index.html", out / "index.html", root="", scored=scored, headline=headline, **common)

    for task in board.tasks:
        tables = [index for index, s in enumerate(scored) if s.table.key.task == task]
        sections = [
            {"scored": scored[index], "plots": plots[index], "motions": motion_block(scored[index])}
            for index in tables
        ]
        for section in sections:
            if section["motions"] is not None:
                write_motion_scripts(section["motions"], out)
        failed = [run for index in tables for run in scored[index].table.runs if not run.ok]
        page = Path("tasks") / _page_name(task)
        _write(
            env, "task.html", out / page, root="../", task=task, sections=sections, failed=failed, **common
        )
        pages.append(page)

    for method in board.methods:
        sections = []
        for s in scored:
            cells = [c for c in s.table.cells if c.method == method]
            if not cells:
                continue
            sections.append({"scored": s, "cells": cells, "plots": sweep_plots(s, method, colours)})
        runs = [run for run in board.runs if run.spec.method == method]
        page = Path("methods") / _page_name(method)
        _write(
            env,
            "method.html",
            out / page,
            root="../",
            method=method,
            sections=sections,
            runs=runs,
            facts=_method_facts(runs),
            **common,
        )
        pages.append(page)
    return pages


def _method_facts(runs: Sequence[Run]) -> dict[str, Any]:
    """Versions, interface versions, images and sweep points of a method's runs."""
    return {
        "versions": sorted({run.spec.method_version for run in runs}),
        "interfaces": sorted({run.spec.interface_version for run in runs}),
        "images": sorted({(run.spec.method_image.reference, run.spec.method_image.digest) for run in runs}),
        "sweeps": {
            run.spec.sweep: dict(run.spec.parameters)
            for run in sorted(runs, key=lambda r: (natural_key(r.spec.sweep), r.stored_at))
        },
        "commits": sorted({str(run.provenance("code", "git", "commit")) for run in runs}),
        "runners": sorted({str(run.provenance("runner")) for run in runs}),
    }
