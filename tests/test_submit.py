"""`hmu submit` on the tiny bench world: the external example is checked, benched from its image (not a
method folder) and bundled; `hmu bundle verify` accepts the bundle and catches a changed or added file.

Without a Docker engine these tests skip with the reason (they fail when CI is set).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from harness_support import example_image, tiny_bench

from benchmark.cli.main import main
from benchmark.harness.bench import format_summary
from benchmark.harness.submit import MANIFEST_FILE, submit_image, verify_bundle


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    image = example_image()
    config = tiny_bench(tmp_path_factory, "results-submit", reference_method=None, track=False)
    bundle = tmp_path_factory.mktemp("submission") / "bundle"
    began = time.perf_counter()
    submission = submit_image(image.reference, config, bundle, echo=lambda line: None)
    took = time.perf_counter() - began
    print(f"hmu submit on the tiny world: {took:.1f} s; bench seconds {dict(submission.summary.timings)}")
    return image, submission


def _writable_copy(bundle: Path, target: Path) -> Path:
    shutil.copytree(bundle, target)
    for folder, _, files in os.walk(target):
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    return target


def test_a_submission_runs_the_image_and_bundles_its_runs(submitted) -> None:
    image, submission = submitted
    assert submission.report.passed and submission.ok, format_summary(submission.summary)
    (run,) = submission.summary.runs
    assert run.method == "keyword_filter" and run.status == "ok"
    bundle = submission.bundle
    folder = bundle / "runs" / run.run_id
    for name in ("run_spec.json", "status.json", "provenance.json", "metrics.json"):
        assert (folder / name).is_file(), name
    spec = json.loads((folder / "run_spec.json").read_text())
    assert spec["method_image"]["digest"] == image.image_id
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["images"]["method"]["image_id"] == image.image_id
    assert provenance["images"]["method"]["external"] is True
    # The image's own entrypoint ran: the blocklist replaced the explicit forget prompts.
    result = json.loads((folder / "generate" / "result.json").read_text())
    assert "named the concept" in result["messages"][0]
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    assert manifest["image"]["image_id"] == image.image_id and manifest["check"]["passed"] is True
    assert manifest["runs"] == [run.run_id] and manifest["harness"]["git"]["commit"]
    assert f"runs/{run.run_id}/metrics.json" in manifest["files"]
    checked = verify_bundle(bundle)
    assert checked.ok, checked.problems
    assert checked.files == len(manifest["files"])


def test_bundle_verify_catches_a_changed_and_an_added_file(submitted, tmp_path: Path, capsys) -> None:
    _, submission = submitted
    assert main(["bundle", "verify", str(submission.bundle)]) == 0
    assert "verifies: method keyword_filter v1" in capsys.readouterr().out
    tampered = _writable_copy(submission.bundle, tmp_path / "tampered")
    (run_id,) = json.loads((tampered / MANIFEST_FILE).read_text())["runs"]
    metrics = tampered / "runs" / run_id / "metrics.json"
    data = json.loads(metrics.read_text())
    data["prompt_sets"]["forget_test"]["metrics"]["fid"]["value"] = 0.0  # a better score, by hand
    metrics.write_text(json.dumps(data))
    (tampered / "runs" / run_id / "extra.json").write_text("{}")
    assert main(["bundle", "verify", str(tampered)]) == 1
    printed = capsys.readouterr().out
    assert f"runs/{run_id}/metrics.json: sha256 differs" in printed
    assert f"runs/{run_id}/extra.json: not listed" in printed


def test_bundle_verify_catches_a_run_of_another_image(submitted, tmp_path: Path) -> None:
    """Hashes alone could be recomputed: the manifest's image must also be the one every run names."""
    _, submission = submitted
    forged = _writable_copy(submission.bundle, tmp_path / "forged")
    manifest = json.loads((forged / MANIFEST_FILE).read_text())
    manifest["image"]["image_id"] = "sha256:" + "0" * 64
    (forged / MANIFEST_FILE).write_text(json.dumps(manifest))
    problems = verify_bundle(forged).problems
    assert any("the check ran on" in problem for problem in problems), problems
    assert any("provenance.json: method image" in problem for problem in problems), problems


def test_submit_never_writes_into_a_used_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "notes.txt").write_text("mine")
    assert main(["submit", "keyword-filter:1", "--out", str(tmp_path / "bundle"), "--no-mlflow"]) == 2
    assert "must be new or empty" in capsys.readouterr().err
    assert (tmp_path / "bundle" / "notes.txt").read_text() == "mine"
