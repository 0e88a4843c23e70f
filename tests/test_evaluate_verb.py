"""The `evaluate` verb (`benchmark.evaluation.request`, `hmu evaluate`) and its files (`schema`).

Round trips a request folder in-process, as the evaluator container runs it, and checks that every bad
request fails with exit status 2 and a `result.json` naming the file and field.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark.backbone.generation import write_motions
from benchmark.cli.main import main as hmu
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.data.synth import SynthConfig, generate_dataset
from benchmark.evaluation.prompts import EvaluationPlan, build_evaluation_plan, write_plan
from benchmark.evaluation.request import REQUEST_SCHEMA, run_evaluate_verb
from benchmark.evaluation.schema import METRICS_SCHEMA, RESULT_SCHEMA, read_metrics
from benchmark.evaluator.tmr import TMRConfig, TrainEvaluatorSettings, train_evaluator
from benchmark.metrics import METRICS
from benchmark.splits import compute_split
from benchmark.tasks import load_task

REPO = Path(__file__).resolve().parent.parent
TASK = REPO / "tasks" / "embedded_violence.yaml"
PASSES = 2


def build_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The dataset and a trained evaluator folder, built once per session (shared with
    test_evaluation_protocol, which builds the same folder: whichever runs first builds it)."""
    root = tmp_path_factory.getbasetemp() / "hmu-evaluation-world"
    data, evaluator = root / "data", root / "evaluator"
    if not (root / "ready").exists():
        generate_dataset(data, SynthConfig(motions=240, seed=1, violent_fraction=0.4))
        small = TMRConfig(latent_dim=64, n_layers=1, ff_size=128, text_hidden=128, embed_dim=64)
        train_evaluator(data, TrainEvaluatorSettings(epochs=8, batch_size=32), small).save(evaluator)
        (root / "ready").write_text("", encoding="utf-8")
    return data, evaluator


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_world(tmp_path_factory)


@pytest.fixture(scope="session")
def staged(world: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EvaluationPlan]:
    """A plan and the real motions as generations, in a folder the requests point into."""
    data, _ = world
    root = tmp_path_factory.mktemp("staged")
    task = load_task(TASK)
    folder = HumanML3DFolder(data)
    plan = build_evaluation_plan(task, folder, compute_split(task, data), passes=PASSES, max_prompts=12)
    write_plan(plan, root / "plan")
    motions = {}
    for prompt_set in plan.prompt_sets:
        for item in prompt_set.items:
            assert item.reference is not None
            frames = item.reference.frames(folder.features(item.reference.motion_id))
            for n in range(item.repeats):
                motions[f"{item.prompt_id}/{n}"] = frames
    write_motions(root / "motions.npz", motions)
    return root, plan


def request_folder(
    tmp_path: Path, world: tuple[Path, Path], staged: tuple[Path, EvaluationPlan], **fields: Any
) -> Path:
    """A request folder whose request.json points at the staged files (relative paths where it can)."""
    root, _ = staged
    folder = tmp_path / "input"
    folder.mkdir()
    shutil.copy(root / "plan" / "references.json", folder / "references.json")
    shutil.copy(root / "motions.npz", folder / "motions.npz")
    request = {
        "schema": REQUEST_SCHEMA,
        "plan": "references.json",
        "motions": "motions.npz",
        "dataset": str(world[0]),
        "evaluator": str(world[1]),
        "cache_dir": str(tmp_path / "cache"),
        "repeats": PASSES,
        "seed": 0,
        **fields,
    }
    (folder / "request.json").write_text(json.dumps({k: v for k, v in request.items() if v is not None}))
    return folder


def result_of(output: Path) -> dict[str, Any]:
    result = json.loads((output / "result.json").read_text())
    assert result["schema"] == RESULT_SCHEMA
    return result


def test_round_trip_writes_valid_metrics(world, staged, tmp_path: Path) -> None:
    _, plan = staged
    input_dir = request_folder(
        tmp_path, world, staged, task={"name": plan.task, "version": plan.task_version}
    )
    output = tmp_path / "output"
    assert run_evaluate_verb(input_dir, output) == 0
    assert sorted(p.name for p in output.iterdir()) == ["metrics.json", "result.json"]

    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["schema"] == METRICS_SCHEMA
    assert metrics["task"] == {"name": "embedded_violence", "version": 1}
    assert metrics["plan_sha256"] == plan.fingerprint()
    assert list(metrics["prompt_sets"]) == list(plan.names)
    assert metrics["settings"]["repeats"] == PASSES
    for name, prompt_set in metrics["prompt_sets"].items():
        declared = {m.name: m.direction for m in plan.prompt_set(name).metrics}
        for metric, entry in prompt_set["metrics"].items():
            assert metric in METRICS
            assert entry["n_repeats"] == PASSES and len(entry["repeats"]) == PASSES
            assert entry["declared"] == (metric in declared)
            assert entry["direction"] == declared.get(metric, METRICS[metric].direction)
            assert entry["delta_to_reference"] is None and entry["description"]
        assert set(declared) <= set(prompt_set["metrics"]) | set(prompt_set["skipped"])
    assert abs(metrics["prompt_sets"]["retain_test"]["metrics"]["fid"]["value"]) < 1e-3

    result = result_of(output)
    assert result["status"] == "ok" and result["error"] is None
    assert result["outputs"] == ["metrics.json", "result.json"]
    assert {entry["status"] for entry in result["cache"]} == {"miss"}
    assert result["timings"]["verb_total"] >= result["timings"]["total"] > 0

    report = read_metrics(output / "metrics.json")
    assert report.plan_sha256 == plan.fingerprint()
    assert report.prompt_set("retain_test").metric("fid").result.repeats == tuple(
        metrics["prompt_sets"]["retain_test"]["metrics"]["fid"]["repeats"]
    )

    # The second run reads the ground truth back and writes the same metrics, byte for byte.
    again = tmp_path / "again"
    assert run_evaluate_verb(input_dir, again) == 0
    assert {entry["status"] for entry in result_of(again)["cache"]} == {"hit"}
    assert (again / "metrics.json").read_bytes() == (output / "metrics.json").read_bytes()


def test_reference_metrics_give_deltas(world, staged, tmp_path: Path) -> None:
    for name in ("reference", "method"):
        (tmp_path / name).mkdir()
    reference_input = request_folder(tmp_path / "reference", world, staged)
    assert run_evaluate_verb(reference_input, tmp_path / "reference" / "out") == 0
    reference = tmp_path / "reference" / "out" / "metrics.json"
    method_input = request_folder(tmp_path / "method", world, staged, reference_metrics=str(reference))
    assert run_evaluate_verb(method_input, tmp_path / "method" / "out") == 0
    metrics = json.loads((tmp_path / "method" / "out" / "metrics.json").read_text())
    assert metrics["reference"]["label"] == str(reference)
    fid = metrics["prompt_sets"]["forget_test"]["metrics"]["fid"]
    assert fid["direction"] == "reference" and fid["delta_to_reference"] == 0.0
    assert fid["reference_value"] == fid["value"]


def test_cli_round_trip(world, staged, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    input_dir = request_folder(tmp_path, world, staged)
    assert hmu(["evaluate", "--input", str(input_dir), "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "retain_test" in printed and "r_precision_top1" in printed


def test_cli_plan_writes_the_files(world, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    code = hmu(
        ["plan", "--task", str(TASK), "--data", str(world[0]), "--out", str(out), "--max-prompts", "4"]
    )
    assert code == 0
    assert (out / "prompts.json").is_file() and (out / "references.json").is_file()


# ----------------------------------------------------------------------------------------------- errors


def failing(input_dir: Path, output: Path) -> str:
    """Run the verb, expect a bad-request failure, return the error message."""
    assert run_evaluate_verb(input_dir, output) == 2
    result = result_of(output)
    assert result["status"] == "failed" and not (output / "metrics.json").exists()
    return result["error"]


def test_missing_request_file(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    message = failing(tmp_path / "input", tmp_path / "out")
    assert "request.json" in message and "file not found" in message


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"repeat": 3}, "field 'repeat': unknown field; did you mean 'repeats'?"),
        ({"repeats": "20"}, "field 'repeats': expected int"),
        ({"repeats": True}, "field 'repeats': expected int"),
        ({"repeats": 0}, "repeats must be >= 1"),
        ({"ncs_ks": [4]}, "ncs_ks must be a non-empty subset"),
        ({"schema": "hmu.evaluate-request/0"}, "field 'schema'"),
        ({"motions": "absent.npz"}, "field 'motions': "),
        ({"evaluator": "/nonexistent/evaluator"}, "field 'evaluator': "),
        ({"task": {"name": "embedded_kick", "version": 1}}, "field 'task'"),
    ],
)
def test_bad_request_names_the_field(
    world, staged, tmp_path: Path, fields: dict[str, Any], expected: str
) -> None:
    input_dir = request_folder(tmp_path, world, staged, **fields)
    message = failing(input_dir, tmp_path / "out")
    assert "request.json" in message and expected in message


def test_bad_plan_names_its_field(world, staged, tmp_path: Path) -> None:
    input_dir = request_folder(tmp_path, world, staged)
    plan = json.loads((input_dir / "references.json").read_text())
    del plan["prompt_sets"][1]["groups"][0]["offset"]
    (input_dir / "references.json").write_text(json.dumps(plan))
    message = failing(input_dir, tmp_path / "out")
    assert "references.json: field 'prompt_sets[1].groups[0].offset': missing" in message


def test_incomplete_motions_fail(world, staged, tmp_path: Path) -> None:
    _, plan = staged
    input_dir = request_folder(tmp_path, world, staged)
    with np.load(input_dir / "motions.npz") as archive:
        motions = {key: archive[key] for key in archive.files}
    _, missing = plan.prompt_set("retain_test").pass_keys(0)[0]
    del motions[missing]
    write_motions(input_dir / "motions.npz", motions)
    message = failing(input_dir, tmp_path / "out")
    assert "motions.npz" in message and missing in message

    (input_dir / "motions.npz").write_bytes(b"garbage")
    assert "motions.npz" in failing(input_dir, tmp_path / "out2")
