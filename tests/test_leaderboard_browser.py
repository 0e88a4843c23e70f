"""The leaderboard site in a real browser: Debian's headless Chromium, driven by Playwright, on the site the
tiny bench rendered (tests/leaderboard_support.py), opened straight from disk (file://).

Checks that every page loads with no console error and asks for nothing but its own files, that clicking a
header reorders the rows, that the stick figures move between two screenshots (and stop when paused), and
keeps a screenshot of the index for CI in results/ci-artifacts/ (or $HMU_CI_ARTIFACTS), and that the labels of
a crowded trade-off plot, measured as Chromium lays the text out, overlap neither each other nor the points.

Without chromium or playwright these tests skip, loudly; with CI set they fail instead
(`apt-get install -y chromium`; ci/test.sh installs it).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest
from leaderboard_support import artifacts_dir, chromium_path, crowded_tradeoff, renderer_part
from PIL import Image, ImageChops


def _require_browser() -> str:
    """Chromium's path; skips loudly without chromium or playwright, fails when CI is set."""
    chromium = chromium_path()
    why = None
    if chromium is None:
        why = "no chromium for the browser tests (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "playwright is not installed (pip install -e '.[test]')"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        warnings.warn(why, stacklevel=2)
        pytest.skip(why)
    return chromium


@pytest.fixture(scope="module")
def browser():
    chromium = _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, reduced_motion="no-preference")
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="module")
def site(browser, request) -> Path:
    """The site the tiny bench rendered; the bench world is made only once a browser is there."""
    return request.getfixturevalue("leaderboard_world").results / "site"


def _watch(page) -> tuple[list[str], list[str]]:
    """Console errors and page errors, and every URL the page requests."""
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    return errors, requests


def test_every_page_loads_without_console_errors(site, page) -> None:
    pages = [
        site / "index.html",
        *sorted((site / "tasks").glob("*.html")),
        *sorted((site / "methods").glob("*.html")),
    ]
    assert len(pages) == 1 + 1 + 4
    errors, requests = _watch(page)
    for path in pages:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        assert page.locator("table").count() >= 1, path
    assert errors == []
    assert requests and all(url.startswith("file://") for url in requests), [
        url for url in requests if not url.startswith("file://")
    ]


def test_the_served_site_loads_without_console_errors(site, page) -> None:
    """As `make serve` serves it: Python's http.server on localhost. A browser asks a server for more than it
    asks a folder for (a favicon), and the motions arrive as scripts over HTTP."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    command += ["--directory", str(site)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        root = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            try:
                urllib.request.urlopen(root, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        errors, requests = _watch(page)
        for path in ("index.html", "tasks/embedded_violence.html", "methods/lcr.html"):
            page.goto(root + path)
            page.wait_for_load_state("load")
            if path.startswith("tasks/"):
                page.wait_for_selector('.motion-block[aria-busy="false"]')
        assert errors == []
        assert len(_motion_scripts(requests)) == 3
        assert all(url.startswith(root) for url in requests), [u for u in requests if not u.startswith(root)]
    finally:
        server.terminate()
        server.wait(timeout=10)


def _order(page, table) -> list[str]:
    return table.locator("tbody tr").evaluate_all("rows => rows.map(row => row.dataset.run)")


def test_clicking_a_header_sorts_the_rows(site, page) -> None:
    page.goto((site / "index.html").as_uri())
    table = page.locator("table.board").first
    before = _order(page, table)
    header = table.locator("th", has_text="Method · sweep point")
    header.click()
    ascending = _order(page, table)
    assert ascending != before and sorted(ascending) == sorted(before)
    keys = table.locator("tbody tr:not(.pinned) td:nth-child(2)").evaluate_all(
        "cells => cells.map(cell => cell.dataset.sort)"
    )
    assert keys == sorted(keys)
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    descending = _order(page, table)
    pinned = table.locator("tbody tr.pinned").count()
    assert descending[:pinned] == ascending[:pinned]  # the reference row stays on top
    assert descending[pinned:] == ascending[pinned:][::-1]

    # The filter hides rows that do not match, and the failed-runs switch hides failures.
    page.locator(".filter").first.fill("lcr")
    visible = table.locator("tbody tr:visible").evaluate_all("rows => rows.map(row => row.dataset.run)")
    assert visible and all(run.startswith("lcr-") for run in visible)
    page.locator(".filter").first.fill("")
    page.locator("[data-failed-for]").first.uncheck()
    assert table.locator("tbody tr.failed:visible").count() == 0


def test_the_plot_picker_shows_the_chosen_pair(site, page) -> None:
    page.goto((site / "tasks" / "embedded_violence.html").as_uri())
    picker = page.locator(".plot-picker").first
    figures = page.locator(".plots figure.tradeoff")
    xs = picker.locator(".pick-x option").all_text_contents()
    ys = picker.locator(".pick-y option").all_text_contents()
    assert len(xs) >= 2 and len(ys) >= 2 and figures.count() == len(xs) * len(ys)

    def shown() -> list[tuple[str, str]]:
        return figures.evaluate_all("fs => fs.filter(f => !f.hidden).map(f => [f.dataset.x, f.dataset.y])")

    assert shown() == [[xs[0], ys[0]]]
    picker.locator(".pick-x").select_option(xs[-1])
    picker.locator(".pick-y").select_option(ys[-1])
    assert shown() == [[xs[-1], ys[-1]]]
    visible = page.locator(".plots figure.tradeoff:visible svg")
    assert visible.get_attribute("aria-label").endswith(f"{xs[-1]} against {ys[-1]}")


def _shot(locator) -> Image.Image:
    return Image.open(io.BytesIO(locator.screenshot())).convert("RGB")


def _motion_scripts(requests: list[str]) -> set[str]:
    return {url.rsplit("/", 1)[-1] for url in requests if "/motions/" in url}


def test_the_stick_figures_move(site, page) -> None:
    errors, requests = _watch(page)
    page.goto((site / "tasks" / "embedded_violence.html").as_uri())
    block = page.locator(".motion-block").first
    assert block.locator("canvas.figure").count() == 3 * 3  # named, implicit, harmless x 3 models
    page.wait_for_selector('.motion-block[aria-busy="false"]')
    loaded = _motion_scripts(requests)
    assert len(loaded) == 3  # the original, the first unlearned run and the reference: not every run
    button = block.locator("button.play")
    if button.get_attribute("aria-pressed") != "true":
        button.click()
    grid = block.locator(".motion-grid")
    first = _shot(grid)
    time.sleep(0.6)
    second = _shot(grid)
    assert ImageChops.difference(first, second).getbbox() is not None, "the animation did not advance"

    button.click()  # pause
    assert button.get_attribute("aria-pressed") == "false"
    paused = _shot(grid)
    time.sleep(0.4)
    assert ImageChops.difference(paused, _shot(grid)).getbbox() is None, "the animation ran on while paused"

    # Choosing the other unlearned run (lcr-k4 or lcr-k16) shows its motion in the middle column.
    choice = block.locator("select.motion-choice")
    assert choice.locator("option").count() == 2
    middle = block.locator('canvas[data-role="unlearned"]').first
    before = _shot(middle)
    choice.select_option(index=1)
    page.wait_for_selector('.motion-block[aria-busy="false"]')
    assert len(_motion_scripts(requests) - loaded) == 1
    assert ImageChops.difference(before, _shot(middle)).getbbox() is not None
    assert errors == []


def _figure_states(block) -> list[str]:
    """'<role> <state>' of each stick-figure canvas: drawn, loading, motion file missing, ..."""
    script = "canvases => canvases.map(c => c.dataset.role + ' ' + c.dataset.state)"
    return block.locator("canvas.figure").evaluate_all(script)


def test_a_missing_motion_script_is_said_not_waited_for(site, page, tmp_path: Path) -> None:
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    page.goto((copy / "tasks" / "embedded_violence.html").as_uri())
    block = page.locator(".motion-block").first
    page.wait_for_selector('.motion-block[aria-busy="false"]')
    states = _figure_states(block)
    assert states and all(state.endswith(" drawn") for state in states), states

    data = json.loads(block.locator("script.motion-data").text_content())
    reference = data["choices"][0]["reference"]
    (copy / data["scripts"][reference]).unlink()
    page.reload()
    page.wait_for_selector('.motion-block[aria-busy="false"]')
    states = _figure_states(block)
    assert {state for state in states if state.startswith("reference")} == {"reference motion file missing"}
    assert all(state.endswith(" drawn") for state in states if not state.startswith("reference"))


def test_a_screenshot_of_the_index_is_kept(site, page) -> None:
    page.goto((site / "index.html").as_uri())
    folder = artifacts_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "leaderboard-index.png"
    page.screenshot(path=str(path), full_page=True)
    image = Image.open(path)
    assert image.width >= 1400 and image.height >= 900
    print(f"\n[leaderboard] screenshot of the index: {path}")


def test_trade_off_labels_do_not_overlap_as_drawn(page, tmp_path: Path) -> None:
    """The label placement estimates text widths; Chromium's real text boxes must agree with it."""
    plots = renderer_part("plots")
    points = crowded_tradeoff(plots)
    svg = plots.tradeoff_svg(points, plots.Axis("concept rate", "lower"), plots.Axis("FID", "lower"), "t")
    css = (Path(plots.__file__).parent / "assets" / "site.css").read_text(encoding="utf-8")
    html = tmp_path / "plot.html"
    html.write_text(f"<!doctype html><style>{css}</style><body>{svg}</body>", encoding="utf-8")
    page.goto(html.as_uri())
    boxes = page.evaluate(
        """() => {
        const box = (e) => { const b = e.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; };
        return {
          area: box(document.querySelector('.plot-area')),
          labels: [...document.querySelectorAll('.point-label')].map(box),
          markers: [...document.querySelectorAll('.point .marker')].map(box),
        };
      }"""
    )

    def overlap(a, b, slack: float = 0.5) -> bool:
        return a[0] + slack < b[2] and b[0] + slack < a[2] and a[1] + slack < b[3] and b[1] + slack < a[3]

    labels, markers, area = boxes["labels"], boxes["markers"], boxes["area"]
    assert len(labels) >= 5 and len(markers) == len(points)
    for i, label in enumerate(labels):
        assert area[0] <= label[0] and label[2] <= area[2] and area[1] <= label[1] and label[3] <= area[3]
        assert not any(overlap(label, other) for other in labels[i + 1 :]), label
        assert not any(overlap(label, marker) for marker in markers), label
