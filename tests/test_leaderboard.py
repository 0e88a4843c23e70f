"""The leaderboard site from results the harness really wrote (tests/leaderboard_support.py): `hmu bench`
renders it at its end; tables with references, CIs and ranks; several results folders and bundles merged;
several run ids for one cell; failed runs kept; motions as the samples' joints; downloads with provenance; the
render replaces only sites it made. The browser checks are in test_leaderboard_browser.py.
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from leaderboard_support import crowded_tradeoff, renderer_part

from benchmark.cli.leaderboard import render, render_results_site
from benchmark.errors import HMUError
from benchmark.motion import joints_from_features

part = renderer_part


def _table(board):
    (table,) = board.tables
    return table


def _cells(table) -> dict[str, object]:
    return {cell.sweep: cell for cell in table.cells}


def test_the_bench_renders_the_site_at_its_end(leaderboard_world) -> None:
    world = leaderboard_world
    assert world.exit_codes == (1, 0, 0)  # the first bench has a failed run; the site did not fail
    index = world.results / "site" / "index.html"
    assert index.is_file()
    html = index.read_text()
    assert "nan_liar--embedded_violence--s0--" in html and "generate invalid_output" in html
    assert "NaN" in html  # the failure's message
    assert (world.results / "site" / "tasks" / "embedded_violence.html").is_file()
    for method in ("original", "lcr", "retrain", "nan_liar"):
        assert (world.results / "site" / "methods" / f"{method}.html").is_file()


def test_a_table_has_references_cis_ranks_and_every_run(leaderboard_world) -> None:
    board = part("results").collect([leaderboard_world.results])
    table = _table(board)
    cells = _cells(table)
    assert set(cells) == {"retrain", "original", "lcr-k4", "lcr-k16", "nan_liar"}
    assert cells["retrain"].reference and not cells["original"].reference
    assert table.concept == "violence"

    # Two run ids for the original cell (before and after the code change): the newest ok one is shown.
    original = cells["original"]
    assert len(original.others) == 1
    assert original.chosen.stored_at >= original.others[0].stored_at and original.chosen.ok
    assert original.chosen.spec.method_image.digest != original.others[0].spec.method_image.digest

    failed = cells["nan_liar"].chosen
    assert not failed.ok and failed.state == "generate invalid_output" and "NaN" in failed.message
    assert failed.stored.status.stage("evaluate").state == "blocked"
    assert (failed.path / "logs" / "generate" / "command.txt").is_file()

    scored = part("scores").score_table(table)
    assert scored.has_reference
    keys = [column.key for column in scored.columns]
    assert keys[0].startswith("forget_test.") and "retain_test.fid" in keys
    groups = [group for group, _ in scored.groups()]
    assert groups == ["forget", "retain"]
    rows = {row.cell.sweep: row for row in scored.rows}
    fid = rows["lcr-k16"].scores["forget_test.fid"]
    assert fid.ci95 is not None and fid.reference_value is not None and fid.delta is not None
    assert fid.delta == pytest.approx(abs(fid.value - fid.reference_value))
    assert (
        rows["retrain"].rank is None and rows["nan_liar"].rank is None
    )  # the reference and failures: unranked
    ranked = [rows[name].rank for name in ("original", "lcr-k4", "lcr-k16")]
    assert all(rank is not None and rank >= 1 for rank in ranked) and min(ranked) == 1
    assert scored.rows[0].cell.sweep == "retrain" and scored.rows[-1].cell.sweep == "nan_liar"


def test_the_table_says_how_big_each_prompt_set_is_and_what_the_evaluator_noted(leaderboard_world) -> None:
    table = _table(part("results").collect([leaderboard_world.results]))
    metrics = _cells(table)["lcr-k16"].chosen.metrics
    expected = {name: (s["groups"], s["items"]) for name, s in metrics["prompt_sets"].items()}
    assert table.prompt_set_sizes() == expected and set(expected) >= {"forget_test", "retain_test"}
    # The tiny world scores 4 prompts per set: fewer than one R-precision batch, which the evaluator notes.
    assert metrics["warnings"]
    ok_runs = sum(1 for cell in table.cells if cell.chosen.ok)
    assert table.evaluator_warnings() == [(warning, ok_runs) for warning in sorted(metrics["warnings"])]

    index = (leaderboard_world.results / "site" / "index.html").read_text()
    groups, items = expected["forget_test"]
    size = f"{groups} motions · {items} prompts"
    assert re.search(rf'forget_test <span class="set-size"[^>]*>{size}</span>', index)
    notes = re.search(r'<ul class="evaluator-notes".*?</ul>', index, re.S).group(0)
    for warning in metrics["warnings"]:
        assert html.escape(warning) in notes


def test_the_aggregate_counts_only_what_every_row_is_ranked_on(leaderboard_world) -> None:
    import copy
    import dataclasses

    table = _table(part("results").collect([leaderboard_world.results]))
    scored = part("scores").score_table(table)
    keys = [column.key for column in scored.columns]
    # What is forgotten leads the table, and counts with or without a reference run.
    assert keys[:2] == ["forget_test.concept_detection_rate", "forget_test.ncs_at_5"]
    assert set(scored.aggregated) == {key for key in keys if key in scored.rows[1].ranks}
    assert "forget_test.fid" in scored.aggregated

    # One row measured without a reference: its → columns have no rank, so no row is judged on them.
    cells = list(table.cells)
    index = next(i for i, cell in enumerate(cells) if cell.sweep == "lcr-k16")
    metrics = copy.deepcopy(dict(cells[index].chosen.metrics))
    for prompt_set in metrics["prompt_sets"].values():
        for entry in prompt_set["metrics"].values():
            entry.pop("delta_to_reference", None)
            entry.pop("delta_ci95", None)
    chosen = dataclasses.replace(cells[index].chosen, metrics=metrics)
    cells[index] = dataclasses.replace(cells[index], chosen=chosen)
    without = part("scores").score_table(dataclasses.replace(table, cells=tuple(cells)))
    referenced = {column.key for column in without.columns if column.direction == "reference"}
    assert without.aggregated and not referenced & set(without.aggregated)
    assert "forget_test.concept_detection_rate" in without.aggregated
    for row in without.rows:
        if row.rank is not None:
            expected = sum(row.ranks[key] for key in without.aggregated) / len(without.aggregated)
            assert row.mean_rank == pytest.approx(expected)


def test_ranks_tie_where_confidence_intervals_overlap() -> None:
    scores = part("scores")
    # b overlaps a; c is clear of both; d has no value.
    ranks = scores.ci_ranks([(1.0, 0.2), (1.3, 0.2), (2.0, 0.1), None], "lower")
    assert ranks == [1, 1, 3, None]
    assert scores.ci_ranks([(1.0, 0.2), (1.3, 0.2), (2.0, 0.1)], "higher") == [2, 2, 1]
    assert scores.aggregate_ranks([1.5, 1.5, 3.0, None]) == [1, 1, 3, None]


def test_the_pareto_front_keeps_the_undominated_points() -> None:
    plots = part("plots")
    points = [
        plots.Point("a", "#000", 1.0, 3.0, None, None),
        plots.Point("b", "#000", 2.0, 2.0, None, None),
        plots.Point("c", "#000", 2.5, 2.5, None, None),  # dominated by b
        plots.Point("d", "#000", 3.0, 1.0, None, None),
        plots.Point("ref", "#000", 0.0, 0.0, None, None, "reference"),  # never on the front
    ]
    assert [p.label for p in plots.pareto_front(points, "lower", "lower")] == ["a", "b", "d"]
    assert [p.label for p in plots.pareto_front(points, "higher", "higher")] == ["a", "c", "d"]


def test_trade_off_labels_fit_without_overlapping_and_the_legend_names_each_method() -> None:
    import xml.etree.ElementTree as ElementTree

    plots = part("plots")
    namespace = {"svg": "http://www.w3.org/2000/svg"}

    def drawn(points):
        svg = plots.tradeoff_svg(points, plots.Axis("concept rate", "lower"), plots.Axis("FID", "lower"), "t")
        root = ElementTree.fromstring(svg)
        labels = [t.text for t in root.iterfind(".//svg:text[@class='point-label']", namespace)]
        legend = [t.text for t in root.iterfind(".//svg:g[@class='legend']/svg:text", namespace)]
        markers = root.findall(".//svg:g[@class='point']", namespace)
        return labels, legend, markers

    # Few, spread-out points: every one is labelled.
    sparse = [
        plots.Point("lcr-k32", plots.PALETTE[0], 0.0, 0.3, 0.01, 0.01, method="lcr"),
        plots.Point("rece-a", plots.PALETTE[1], 0.5, 0.25, 0.01, 0.01, method="rece"),
        plots.Point("uce-b", plots.PALETTE[2], 1.0, 0.2, 0.01, 0.01, method="uce"),
        plots.Point("retrain", plots.REFERENCE_COLOUR, 0.6, 0.21, None, None, "reference"),
    ]
    labels, legend, markers = drawn(sparse)
    assert sorted(labels) == ["lcr-k32", "rece-a", "retrain", "uce-b"]
    assert legend == ["lcr", "rece", "uce", "retrain (reference)", "Pareto front"]
    assert len(markers) == 4

    # A crowd: every run keeps its marker, the reference and the front are labelled first, and the labels
    # placed do not overlap (with the same width estimate the browser test checks against real text).
    dense = crowded_tradeoff(plots)
    labels, legend, markers = drawn(dense)
    assert len(markers) == len(dense)
    assert legend == ["code_ban", "lcr", "rece", "uce", "retrain (reference)", "Pareto front"]
    front = plots.pareto_front(dense, "lower", "lower")
    assert "retrain" in labels and {p.label for p in front} <= set(labels)
    assert 0 < len(labels) < len(dense)


def test_several_results_folders_and_bundles_merge(leaderboard_world, tmp_path: Path) -> None:
    world = leaderboard_world
    results = part("results")
    board = results.collect([world.results, world.second, world.bundle])
    duplicates = {(d.run_id, d.same_record) for d in board.duplicates}
    bundled = sorted(path.name for path in (world.bundle / "runs").iterdir())
    assert {(run_id, True) for run_id in bundled} <= duplicates  # copies of the same records
    second = {path.name for path in (world.second / "runs").iterdir()}
    again = sorted(second & {path.name for path in (world.results / "runs").iterdir()})
    assert again, (
        "the second bench stored other run ids than the first: did benchmark/ change during the test "
        "session? (the local runner's image digest hashes its sources)"
    )
    assert {(run_id, False) for run_id in again} <= duplicates  # the same runs stored again
    by_id = {run.run_id: run for run in board.runs}
    for run_id in again:  # the newer record is used
        records = [
            json.loads((folder / "runs" / run_id / "status.json").read_text())
            for folder in (world.results, world.second)
        ]
        assert by_id[run_id].stored_at == max(record["stored_at"] for record in records)
        assert (
            by_id[run_id].record_id
            == max(records, key=lambda r: (r["stored_at"], r["record_id"]))["record_id"]
        )
    assert len(_table(board).cells) == 5  # merged, not doubled

    report = render([world.results, world.bundle], tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    assert report.runs == len(list((world.results / "runs").iterdir()))
    assert "stored twice" in html

    with pytest.raises(HMUError, match="no runs/ inside"):
        results.collect([world.results, tmp_path])


def test_an_unreadable_run_folder_is_shown_not_dropped(leaderboard_world, tmp_path: Path) -> None:
    runs = leaderboard_world.results / "runs"
    source = next(path for path in sorted(runs.iterdir()) if path.name.startswith("lcr-"))
    damaged = tmp_path / "results" / "runs" / source.name
    shutil.copytree(source, damaged)
    (damaged / "run_spec.json").chmod(0o644)
    (damaged / "run_spec.json").write_text("{ not json")  # a damaged copy of a real run folder
    board = part("results").collect([tmp_path / "results"])
    assert board.runs == () and [bad.path for bad in board.unreadable] == [damaged]
    assert "run_spec.json" in board.unreadable[0].error
    render([tmp_path / "results"], tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    assert "Unreadable run folder" in html and source.name in html


def test_motions_are_the_samples_joints(leaderboard_world) -> None:
    board = part("results").collect([leaderboard_world.results])
    cell = _cells(_table(board))["lcr-k16"]
    run = cell.chosen
    index = json.loads((run.path / "samples" / "samples.json").read_text())
    assert set(index) == {"forget_test", "forget_test_implicit", "retain_test"}
    motions = part("motions")
    clip = motions.sample_clip(run.path, "forget_test")
    features = np.load(run.path / "samples" / index["forget_test"]["file"])
    expected = np.rint(joints_from_features(features) * 100)
    assert clip["frames"] == index["forget_test"]["frames"] == expected.shape[0]
    assert np.array_equal(motions.unpack_joints(clip["joints"]), expected)

    # The page carries the player's index; each run's clips are in a script of their own, loaded on demand.
    site = leaderboard_world.results / "site"
    page = (site / "tasks" / "embedded_violence.html").read_text()
    match = re.search(r'<script type="application/json" class="motion-data">(.*?)</script>', page, re.S)
    data = json.loads(match.group(1))
    assert clip["joints"] not in page
    script = (site / data["scripts"][run.run_id]).read_text()
    call = re.fullmatch(r'hmuMotionsLoaded\(("[^"]+"),(.*)\);\n', script, re.S)
    assert json.loads(call.group(1)) == run.run_id
    assert json.loads(call.group(2))["forget_test"]["joints"] == clip["joints"]
    shown = {c.chosen.run_id for c in _table(board).cells if c.chosen.ok}
    assert {path.stem for path in (site / "motions").glob("*.js")} == shown
    choice = next(c for c in data["choices"] if c["run"] == run.run_id)
    original, reference = _cells(_table(board))["original"], _cells(_table(board))["retrain"]
    assert choice["original"] == original.chosen.run_id and choice["reference"] == reference.chosen.run_id
    assert "fetch(" not in (leaderboard_world.results / "site" / "assets" / "site.js").read_text()


def test_downloads_carry_provenance(leaderboard_world) -> None:
    site = leaderboard_world.results / "site"
    with (site / "results.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    runs = {path.name for path in (leaderboard_world.results / "runs").iterdir()}
    assert {row["run_id"] for row in rows} == runs  # failed runs included
    for row in rows:
        for field in ("method_image_digest", "method_version", "task_version", "evaluator_sha256",
                      "evaluator_image_digest", "git_commit", "stored_at"):  # fmt: skip
            assert row[field], (row["run_id"], field)
    ok = [row for row in rows if row["status"] == "ok"]
    assert all(row["metric"] and row["value"] for row in ok)
    assert any(row["evaluator_kind"] for row in ok)
    failed = [row for row in rows if row["status"] == "failed"]
    assert failed and all(row["state"] == "generate invalid_output" and not row["metric"] for row in failed)
    shown = {row["run_id"] for row in rows if row["shown"] == "true"}
    assert len(shown) == 5  # one per cell; the older original run is not shown

    document = json.loads((site / "results.json").read_text())
    assert {run["run_id"] for run in document["runs"]} == runs
    lcr = next(run for run in document["runs"] if run["sweep"] == "lcr-k16")
    assert lcr["parameters"]["k"] == 16
    assert lcr["metrics"]["forget_test"]["fid"]["delta_to_reference"] is not None

    # Each method page lists its runs with the same provenance, failed ones included.
    for method in {row["method"] for row in rows}:
        page = (site / "methods" / f"{method}.html").read_text()
        for row in (r for r in rows if r["method"] == method):
            match = re.search(rf'<tr id="run-{re.escape(row["run_id"])}".*?</tr>', page, re.S)
            assert match, (method, row["run_id"])
            cells = match.group(0)
            expected = [row["method_image_digest"][:24], row["evaluator_sha256"][:12], row["git_commit"][:10]]
            expected += [row["stored_at"], f"v{row['task_version']}", f">{row['method_version']}<"]
            for value in expected:
                assert value in cells, (row["run_id"], value)


def test_the_render_is_repeatable_and_replaces_only_sites(leaderboard_world, tmp_path: Path) -> None:
    out = tmp_path / "site"
    render([leaderboard_world.results], out)
    first = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    render([leaderboard_world.results], out)  # over the old site
    second = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert first == second
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging folder left

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a site")
    with pytest.raises(HMUError, match="not a rendered site"):
        render([leaderboard_world.results], mine)
    assert (mine / "notes.txt").read_text() == "not a site"


def test_a_failed_render_does_not_hide_the_bench(leaderboard_world, tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (results / "site").mkdir()
    (results / "site" / "keep.txt").write_text("someone's file")
    assert render_results_site(results) == 1
    err = capsys.readouterr().err
    assert "could not be rendered" in err and "hmu leaderboard --results" in err
    assert (results / "site" / "keep.txt").is_file()


def test_the_cli(leaderboard_world, tmp_path: Path, capsys) -> None:
    from benchmark.cli.main import main

    out = tmp_path / "site"
    code = main(["leaderboard", "--results", str(leaderboard_world.results), "--out", str(out)])
    assert code == 0 and (out / "index.html").is_file()
    assert "1 table(s)" in capsys.readouterr().out
    assert main(["leaderboard", "--results", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "no runs/ inside" in capsys.readouterr().err
