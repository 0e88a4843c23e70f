"""The harness's own checks of a stage's output folder, on folders made by hand: every rule of the contract
(plain files only, limits, result.json, a loadable model, valid motions, metrics) and what breaks it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.backbone.generation import write_motions
from benchmark.backbone.model import model_hash
from benchmark.evaluation.schema import METRICS_SCHEMA, RESULT_SCHEMA
from benchmark.harness.tinyworld import generate_input, tiny_model
from benchmark.harness.validate import (
    InvalidOutput,
    OutputLimits,
    check_tree,
    read_document,
    read_stage_result,
    validate_output,
)


def _stage_result(verb: str, **fields) -> dict:
    return {
        "schema": "hmu.method-result/1",
        "status": "ok",
        "verb": verb,
        "method": "original",
        "method_version": 1,
        "interface_version": 1,
        "wall_seconds": 1.0,
        "device": "cpu",
        "parameters": {},
        "messages": [],
        "outputs": ["model"] if verb == "unlearn" else ["motions.npz"],
        **fields,
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "base")


@pytest.fixture
def unlearn_out(tmp_path: Path, model: Path) -> Path:
    out = tmp_path / "unlearn"
    out.mkdir()
    shutil.copytree(model, out / "model")
    (out / "result.json").write_text(json.dumps(_stage_result("unlearn", model_hash=model_hash(model))))
    return out


@pytest.fixture
def generate_in(tmp_path: Path, model: Path) -> Path:
    return generate_input(tmp_path / "generate.in", model)


def _motions(length_walk: int = 24, dim: int = 263, value: float = 0.5) -> dict[str, np.ndarray]:
    return {
        "walk/0": np.full((length_walk, dim), value, np.float32),
        "walk/1": np.full((length_walk, dim), value, np.float32),
        "kick/0": np.full((17, dim), value, np.float32),
    }


def _generate_out(tmp_path: Path, motions: dict[str, np.ndarray], num_motions: int = 3) -> Path:
    out = tmp_path / "generate"
    out.mkdir()
    np.savez(out / "motions.npz", **motions)  # np.savez, not write_motions: it would refuse bad motions
    (out / "result.json").write_text(json.dumps(_stage_result("generate", num_motions=num_motions)))
    return out


# ----------------------------------------------------------------------------- valid outputs


def test_a_valid_unlearn_output(unlearn_out: Path) -> None:
    checked = validate_output("unlearn", unlearn_out)
    assert checked.record["status"] == "ok" and checked.tree.top_level == {"model", "result.json"}
    assert checked.tree.entries > 3 and checked.tree.bytes > 0


def test_a_valid_generate_output(tmp_path: Path, generate_in: Path) -> None:
    out = tmp_path / "generate"
    out.mkdir()
    write_motions(out / "motions.npz", _motions())
    (out / "result.json").write_text(json.dumps(_stage_result("generate", num_motions=3)))
    assert validate_output("generate", out, generate_in).record["num_motions"] == 3


def test_a_valid_describe_and_evaluate_output(tmp_path: Path) -> None:
    (tmp_path / "describe").mkdir()
    stdout = tmp_path / "stdout.log"
    stdout.write_text(
        json.dumps(
            {
                "schema": "hmu.method-description/1",
                "name": "original",
                "version": 1,
                "interface_version": 1,
                "description": "x",
                "parameters": {},
                "sweep": {},
                "backbones": ["momask"],
                "resources": {"cpus": 1, "memory_gb": 2.0, "gpu": "optional", "time_limit_s": 600.0},
            }
        )
        + "\n"
    )
    assert validate_output("describe", tmp_path / "describe", stdout=stdout).record["name"] == "original"
    out = tmp_path / "evaluate"
    out.mkdir()
    metrics = {
        "schema": METRICS_SCHEMA,
        "task": {"name": "embedded_violence", "version": 1},
        "dataset": {"name": "embedded", "features_sha256": "f"},
        "plan_sha256": "p",
        "evaluator": {"kind": "tmr", "sha256": "e"},
        "settings": {},
        "prompt_sets": {},
        "classifier": None,
        "reference": None,
        "warnings": [],
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    result = {"schema": RESULT_SCHEMA, "status": "ok", "error": None, "warnings": [], "timings": {}}
    (out / "result.json").write_text(json.dumps({**result, "cache": [], "outputs": ["metrics.json"]}))
    assert validate_output("evaluate", out).record["status"] == "ok"
    (out / "metrics.json").write_text(json.dumps({**metrics, "schema": "other/1"}))
    with pytest.raises(InvalidOutput, match="not a valid metrics file"):
        validate_output("evaluate", out)


# ----------------------------------------------------------------------------- the shape of the folder


def test_links_out_are_refused(unlearn_out: Path) -> None:
    (unlearn_out / "model" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(InvalidOutput, match=r"symbolic link \(to /etc/passwd\)"):
        check_tree(unlearn_out)


def test_hard_links_are_refused(unlearn_out: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("a host file")
    os.link(outside, unlearn_out / "model" / "copy.txt")
    with pytest.raises(InvalidOutput, match="hard link"):
        check_tree(unlearn_out)


def test_special_files_are_refused(unlearn_out: Path) -> None:
    os.mkfifo(unlearn_out / "pipe")
    with pytest.raises(InvalidOutput, match="a fifo"):
        check_tree(unlearn_out)


def test_limits_on_files_bytes_and_depth(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "a" / "b" / "c").mkdir(parents=True)
    for index in range(5):
        (out / f"f{index}").write_bytes(b"x" * 100)
    assert check_tree(out).entries == 8 and check_tree(out).bytes == 500
    with pytest.raises(InvalidOutput, match="more than 7 files"):
        check_tree(out, OutputLimits(max_files=7))
    with pytest.raises(InvalidOutput, match="more than 499 bytes"):
        check_tree(out, OutputLimits(max_bytes=499))
    with pytest.raises(InvalidOutput, match="deeper than 2"):
        check_tree(out, OutputLimits(max_depth=2))
    with pytest.raises(ValueError):
        OutputLimits(max_files=0)


def test_stray_and_missing_entries(unlearn_out: Path) -> None:
    (unlearn_out / "extra.bin").write_bytes(b"x")
    with pytest.raises(InvalidOutput, match=r"unexpected \['extra.bin'\]"):
        validate_output("unlearn", unlearn_out)
    (unlearn_out / "extra.bin").unlink()
    (unlearn_out / "result.json").unlink()
    with pytest.raises(InvalidOutput, match=r"missing \['result.json'\]"):
        validate_output("unlearn", unlearn_out)


# ----------------------------------------------------------------------------- result.json


def test_result_json_must_parse_and_say_ok(unlearn_out: Path) -> None:
    result = unlearn_out / "result.json"
    result.write_text("{not json")
    with pytest.raises(InvalidOutput, match="not valid JSON"):
        validate_output("unlearn", unlearn_out)
    result.write_text(json.dumps({**_stage_result("unlearn", model_hash="x"), "verb": "sing"}))
    with pytest.raises(InvalidOutput, match="verb"):
        validate_output("unlearn", unlearn_out)
    result.write_text(json.dumps(_stage_result("unlearn", status="failed", outputs=[], error="boom")))
    with pytest.raises(InvalidOutput, match="exit status 0 but status 'failed'"):
        validate_output("unlearn", unlearn_out)
    assert read_stage_result(unlearn_out)["error"] == "boom"


def test_result_json_size_and_kind(unlearn_out: Path) -> None:
    result = unlearn_out / "result.json"
    result.write_text(" " * 2000 + "{}")
    with pytest.raises(InvalidOutput, match="more than 1000"):
        read_document(result, OutputLimits(max_document_bytes=1000))
    result.unlink()
    result.symlink_to("/etc/passwd")
    with pytest.raises(InvalidOutput, match="not a plain file"):
        read_stage_result(unlearn_out)


# ----------------------------------------------------------------------------- per verb


def test_a_model_that_does_not_load(unlearn_out: Path) -> None:
    weights = next(path for path in (unlearn_out / "model").iterdir() if path.suffix in (".pt", ".pth"))
    weights.write_bytes(b"not a state dict")
    with pytest.raises(InvalidOutput, match="does not load"):
        validate_output("unlearn", unlearn_out)


def test_a_model_whose_hash_differs(unlearn_out: Path) -> None:
    (unlearn_out / "result.json").write_text(json.dumps(_stage_result("unlearn", model_hash="0" * 64)))
    with pytest.raises(InvalidOutput, match="hashes to"):
        validate_output("unlearn", unlearn_out)


@pytest.mark.parametrize(
    ("motions", "num_motions", "match"),
    [
        (_motions(value=float("nan")), 3, "NaN or infinite"),
        (_motions(value=float("inf")), 3, "NaN or infinite"),
        (_motions(dim=262), 3, r"shape \(frames >= 1, 263\)"),
        (_motions(length_walk=23), 3, "23 frames, asked for 24"),
        ({key: value for key, value in _motions().items() if key != "kick/0"}, 2, "missing motions"),
        ({**_motions(), "jump/0": np.zeros((5, 263), np.float32)}, 4, "unexpected motions"),
        ({key: value.astype(np.float64) for key, value in _motions().items()}, 3, "expected float32"),
        (_motions(), 4, "num_motions 4"),
    ],
    ids=["nan", "inf", "feature-size", "length", "missing", "extra", "float64", "count"],
)
def test_bad_motions(tmp_path: Path, generate_in: Path, motions, num_motions: int, match: str) -> None:
    out = _generate_out(tmp_path, motions, num_motions)
    with pytest.raises(InvalidOutput, match=match):
        validate_output("generate", out, generate_in)


def test_motions_that_are_not_an_archive_or_expand_too_far(tmp_path: Path, generate_in: Path) -> None:
    out = _generate_out(tmp_path, _motions())
    np.savez_compressed(out / "motions.npz", **_motions())  # a few kB on disk, 68 kB once read
    with pytest.raises(InvalidOutput, match="expands to"):
        validate_output("generate", out, generate_in, limits=OutputLimits(max_bytes=60_000))
    (out / "motions.npz").write_bytes(b"garbage")
    with pytest.raises(InvalidOutput, match="not a readable .npz"):
        validate_output("generate", out, generate_in)


def test_describe_leaves_the_folder_empty_and_prints_a_description(tmp_path: Path) -> None:
    out = tmp_path / "describe"
    out.mkdir()
    stdout = tmp_path / "stdout.log"
    stdout.write_text("hello\n")
    with pytest.raises(InvalidOutput, match="not valid JSON"):
        validate_output("describe", out, stdout=stdout)
    stdout.write_text('{"schema": "hmu.method-description/1", "name": "x"}')
    with pytest.raises(InvalidOutput, match="no valid description"):
        validate_output("describe", out, stdout=stdout)
    (out / "file").write_text("x")
    with pytest.raises(InvalidOutput, match="unexpected"):
        validate_output("describe", out, stdout=stdout)
