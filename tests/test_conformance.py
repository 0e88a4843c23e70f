"""`hmu check` on the real engine: the external example method (examples/external_method, its own Dockerfile
and entrypoint) passes every check, and each deliberately bad image (the example with one misbehaviour)
fails the check it breaks, with the reason. Also the example's blocklist on its own, without Docker.

Without a Docker engine the container tests skip with the reason (they fail when CI is set).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from harness_support import BAD_IMAGES, EXAMPLE, bad_image, example_image

from benchmark.cli.main import main
from benchmark.harness.conformance import CHECKS
from benchmark.harness.docker import DockerCLI

# (bad image, the check that must fail, words its reason holds, its limit per stage)
BAD_CASES = [
    ("crash", "unlearn", ["crashed", "crashed on purpose"], 300),
    ("hang", "time budget", ["unlearn", "wall-clock limit of 30 s"], 30),
    ("nan", "generate", ["invalid_output", "NaN"], 300),
    ("write_outside", "output", ["outside /hmu/output", "Read-only file system"], 300),
    ("link_out", "output", ["symbolic link", "/etc/passwd"], 300),
    ("network", "network", ["unlearn", "Network is unreachable"], 300),
    ("oversized", "output", ["more than 268435456 bytes"], 300),
    ("describe", "describe", ["resources", "missing"], 300),
]


def _check(image: str, report: Path, seconds: float = 300) -> tuple[int, dict]:
    began = time.perf_counter()
    code = main(["check", image, "--report", str(report), "--stage-seconds", str(seconds)])
    print(f"hmu check {image}: exit {code} in {time.perf_counter() - began:.1f} s")
    return code, json.loads(report.read_text())


def test_the_external_example_passes(tmp_path: Path, capsys) -> None:
    image = example_image()
    code, report = _check(image.reference, tmp_path / "report.json")
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert report["passed"] is True and report["method"] == "keyword_filter"
    assert [check["name"] for check in report["checks"]] == list(CHECKS)
    assert all(check["status"] == "pass" for check in report["checks"]), report["checks"]
    assert report["image_id"] == image.image_id
    assert "PASSED: all 7 checks" in printed and printed.count("PASS ") == 7
    # Its own entrypoint, not the benchmark's.
    config = DockerCLI().inspect("image", image.reference)["Config"]
    assert config["Entrypoint"] == ["python3", "/opt/keyword_filter/keyword_filter.py"]
    assert (
        config["Labels"]["org.hmu.role"] == "method"
        and config["Labels"]["org.hmu.method"] == "keyword_filter"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "failing", "words", "seconds"), BAD_CASES, ids=[case[0] for case in BAD_CASES]
)
def test_a_bad_image_fails_with_its_reason(mode, failing, words, seconds, tmp_path: Path, capsys) -> None:
    image = bad_image(mode, tmp_path / "contexts")
    code, report = _check(image.reference, tmp_path / "report.json", seconds)
    printed = capsys.readouterr().out
    assert code == 1, printed
    assert report["passed"] is False
    result = next(check for check in report["checks"] if check["name"] == failing)
    assert result["status"] == "fail", report["checks"]
    for word in words:
        assert word in result["reason"], result["reason"]
    assert f"FAIL  {failing}" in printed
    # The misbehaviour is pinned on its own check: the ones it does not touch still pass.
    untouched = {"describe", "network"} - {failing}
    assert all(check["status"] == "pass" for check in report["checks"] if check["name"] in untouched), report
    assert set(BAD_IMAGES) == {case[0] for case in BAD_CASES}


def test_a_missing_image_cannot_be_checked(capsys) -> None:
    example_image()  # needs the engine
    assert main(["check", "hmu-test/no-such-image:none"]) == 2
    assert "no image 'hmu-test/no-such-image:none'" in capsys.readouterr().err


def _keyword_filter():
    spec = importlib.util.spec_from_file_location("keyword_filter", EXAMPLE / "keyword_filter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_blocklist_catches_explicit_prompts_and_misses_implicit_ones() -> None:
    keywords = ["kick", "punch", "hit", "jab"]
    blocked = _keyword_filter().blocked
    for explicit in ("a person kicks high", "someone punched the bag", "hitting twice", "jabbing fast"):
        assert blocked(explicit, keywords), explicit
    for harmless in ("a person walks to the white line", "picks up a pitcher", "the kickoff"):
        assert not blocked(harmless, keywords), harmless
    # What a blocklist cannot see: the concept described without its words.
    assert not blocked("pivots on one foot and swings the right leg around high", keywords)
