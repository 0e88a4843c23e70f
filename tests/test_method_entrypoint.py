"""The container verbs end to end, in-process, on a tiny model: describe, unlearn, generate, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.api.contract import MethodDescription, StageResult, UnlearnProvenance
from benchmark.api.entrypoint import EXIT_BAD_INPUT, EXIT_METHOD_FAILED, EXIT_OK, print_description, run_stage
from benchmark.backbone.generation import Prompt, read_motions, write_prompts
from benchmark.backbone.model import load_model, model_hash
from benchmark.cli.main import main
from benchmark.errors import HMUError
from benchmark.harness.tinyworld import tiny_model

REPO_METHODS = Path(__file__).resolve().parent.parent / "methods"

PROMPTS = [
    Prompt("walk", "a person walks forward", 24, repeats=2, seed=1),
    Prompt("kick", "a person kicks with the right leg", 17, repeats=1, seed=2),
]
SETTINGS = {"timesteps": 2, "batch_size": 4}
"""Fewer decoding steps than MoMask's 10: the contract does not depend on the count."""

FAILING = """\
from benchmark.api import Method, UnlearnOutcome


class Failing(Method):
    def unlearn(self, model, request, workdir):
        raise RuntimeError("boom: the method broke")
"""

NAN = """\
import torch

from benchmark.api import Method, UnlearnOutcome


class Nan(Method):
    def unlearn(self, model, request, workdir):
        with torch.no_grad():
            model.backbone.rvq.codebooks[0][3, 0] = float("nan")
        return UnlearnOutcome(backbone=model.backbone)
"""

BAN = """\
from benchmark.api import Method, UnlearnOutcome


class Ban(Method):
    \"\"\"A sampling-time method: unlearn picks the only base-layer code allowed, generate enforces it.\"\"\"

    def unlearn(self, model, request, workdir):
        (workdir / "scratch.txt").write_text("scratch files stay out of the output")
        return UnlearnOutcome(backbone=model.backbone, record={"keep": request.parameters["keep"]})

    def logits_processor(self, model, request):
        keep = self.unlearn_record(model)["keep"]

        def only(logits, step):
            if step.layer == 0:
                allowed = logits[..., keep].clone()
                logits[...] = float("-inf")
                logits[..., keep] = allowed
            return logits

        return only
"""


def _method(root: Path, name: str, cls: str, source: str, defaults: str = "{}") -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "method.yaml").write_text(
        f"name: {name}\nversion: 3\ndescription: A test method.\nclass: method:{cls}\n"
        f"defaults: {defaults}\nresources: {{gpu: optional}}\n"
    )
    (folder / "method.py").write_text(source)
    (folder / "README.md").write_text(f"# {name}\n")


@pytest.fixture(scope="module")
def methods_dirs(tmp_path_factory) -> list[Path]:
    """The repository's methods plus test methods that fail or act at sampling time."""
    root = tmp_path_factory.mktemp("test_methods")
    _method(root, "failing", "Failing", FAILING)
    _method(root, "nan", "Nan", NAN)
    _method(root, "ban", "Ban", BAN, defaults="{keep: 7}")
    return [REPO_METHODS, root]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models") / "base")


def unlearn_request(model: Path, **changes) -> dict:
    return {
        "schema": "hmu.unlearn-request/1",
        "task": {"name": "embedded_violence", "version": 1},
        "concept": {"name": "violence", "keywords": ["kick", "punch"]},
        "base_model": str(model),
        "data_dir": "data",  # relative: inside the request folder
        "forget": {"motion_ids": ["000001"], "prompts": ["a person kicks"]},
        "retain": {"motion_ids": ["000002"], "prompts": ["a person walks"]},
        "seed": 0,
        "device": "cpu",
        **changes,
    }


def write_request(folder: Path, request: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "request.json").write_text(json.dumps(request))
    return folder


def generate_request(folder: Path, model: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_prompts(folder / "prompts.json", PROMPTS)
    request = {"schema": "hmu.generate-request/1", "model": str(model), "prompts": "prompts.json"}
    (folder / "request.json").write_text(json.dumps({**request, "settings": SETTINGS, "device": "cpu"}))
    return folder


def read_result(output: Path) -> StageResult:
    return StageResult.from_json(json.loads((output / "result.json").read_text()), output / "result.json")


def test_describe_prints_one_json_object(methods_dirs, capsys) -> None:
    stream = io.StringIO()
    assert print_description("original", methods_dirs, stream=stream) == EXIT_OK
    description = MethodDescription.from_json(json.loads(stream.getvalue()), "stdout")
    assert (description.name, description.version, description.interface_version) == ("original", 1, 1)
    assert stream.getvalue().count("\n") == 1
    assert main(["method", "describe", "--method", "ban", *_dirs(methods_dirs)]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"] == {"keep": 7}


def _dirs(methods_dirs: list[Path]) -> list[str]:
    return [arg for path in methods_dirs for arg in ("--methods-dir", str(path))]


@pytest.fixture(scope="module")
def original_output(tmp_path_factory, base_model, methods_dirs) -> Path:
    root = tmp_path_factory.mktemp("original")
    request = write_request(root / "in", unlearn_request(base_model))
    assert run_stage("unlearn", "original", request, root / "out", methods_dirs) == EXIT_OK
    return root / "out"


def test_unlearn_original_writes_the_unchanged_model(original_output: Path, base_model: Path) -> None:
    assert sorted(path.name for path in original_output.iterdir()) == ["model", "result.json"]
    result = read_result(original_output)
    assert (result.status, result.verb, result.method, result.method_version) == (
        "ok",
        "unlearn",
        "original",
        1,
    )
    assert result.outputs == ("model",) and result.device == "cpu" and result.parameters == {}
    assert result.messages and "no change" in result.messages[0]
    # Same weights; a different hash, because the provenance (part of the hash) records the lineage.
    base, unlearned = load_model(base_model), load_model(original_output / "model")
    base_state, unlearned_state = base.backbone.state_dict(), unlearned.backbone.state_dict()
    assert base_state.keys() == unlearned_state.keys()
    assert all(torch.equal(base_state[key], unlearned_state[key]) for key in base_state)
    assert result.model_hash == model_hash(original_output / "model") != model_hash(base_model)
    provenance = UnlearnProvenance.from_json(unlearned.card.provenance, "model.json")
    assert (provenance.method, provenance.parent, provenance.record) == (
        "original",
        model_hash(base_model),
        {"change": "none"},
    )
    assert (provenance.task.name, provenance.concept, provenance.seed) == ("embedded_violence", "violence", 0)
    assert unlearned.card.text_encoder == base.card.text_encoder


def test_unlearn_is_reproducible(
    original_output: Path, base_model: Path, methods_dirs, tmp_path: Path
) -> None:
    request = write_request(tmp_path / "in", unlearn_request(base_model))
    assert run_stage("unlearn", "original", request, tmp_path / "out", methods_dirs) == EXIT_OK
    assert read_result(tmp_path / "out").model_hash == read_result(original_output).model_hash


def test_generate_writes_checked_motions(original_output: Path, methods_dirs, tmp_path: Path) -> None:
    request = generate_request(tmp_path / "in", original_output / "model")
    assert main(["method", "generate", "--method", "original", *_dirs(methods_dirs),
                 "--input", str(request), "--output", str(tmp_path / "out")]) == 0  # fmt: skip
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["motions.npz", "result.json"]
    result = read_result(tmp_path / "out")
    assert (result.status, result.verb, result.num_motions, result.outputs) == (
        "ok",
        "generate",
        3,
        ("motions.npz",),
    )
    motions = read_motions(tmp_path / "out" / "motions.npz", prompts=PROMPTS)
    assert {key: value.shape for key, value in motions.items()} == {
        "walk/0": (24, 263),
        "walk/1": (24, 263),
        "kick/0": (17, 263),
    }


def test_sampling_time_method_passes_its_record_to_generate(
    original_output: Path, base_model: Path, methods_dirs, tmp_path: Path
) -> None:
    request = write_request(tmp_path / "unlearn_in", unlearn_request(base_model, parameters={"keep": 5}))
    assert run_stage("unlearn", "ban", request, tmp_path / "unlearn_out", methods_dirs) == EXIT_OK
    assert read_result(tmp_path / "unlearn_out").parameters == {"keep": 5}
    model = tmp_path / "unlearn_out" / "model"
    assert (
        run_stage(
            "generate", "ban", generate_request(tmp_path / "g", model), tmp_path / "banned", methods_dirs
        )
        == 0
    )
    assert (
        run_stage(
            "generate", "original", generate_request(tmp_path / "o", model), tmp_path / "free", methods_dirs
        )
        == 0
    )
    banned = read_motions(tmp_path / "banned" / "motions.npz")
    free = read_motions(tmp_path / "free" / "motions.npz")
    assert not np.allclose(banned["walk/0"], free["walk/0"])
    # generate of "ban" on a model "ban" did not make is the method's failure, recorded.
    other = generate_request(tmp_path / "x", original_output / "model")
    assert run_stage("generate", "ban", other, tmp_path / "wrong", methods_dirs) == EXIT_METHOD_FAILED
    assert "unlearned by 'original', not 'ban'" in read_result(tmp_path / "wrong").error


@pytest.mark.parametrize(
    ("method", "message"),
    [("failing", "boom: the method broke"), ("nan", "rvq.quantizer.layers.0.codebook holds NaN")],
)
def test_a_failing_method_is_recorded_not_raised(
    base_model, methods_dirs, tmp_path: Path, method, message
) -> None:
    request = write_request(tmp_path / "in", unlearn_request(base_model))
    assert run_stage("unlearn", method, request, tmp_path / "out", methods_dirs) == EXIT_METHOD_FAILED
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["result.json"]
    result = read_result(tmp_path / "out")
    assert (result.status, result.method, result.method_version, result.outputs) == ("failed", method, 3, ())
    assert message in result.error and result.model_hash is None


def test_bad_request_names_file_and_field(base_model, methods_dirs, tmp_path: Path, capsys) -> None:
    cases = [
        (
            unlearn_request(base_model, sed=1),
            "request.json: field 'sed': unknown field (did you mean 'seed'?)",
        ),
        (
            unlearn_request(base_model, parameters={"k": 3}),
            "field 'parameters.k': method original has no such",
        ),
        (unlearn_request(base_model, base_model="nowhere"), "field 'base_model': "),
        (unlearn_request(base_model, device="tpu"), "unknown device 'tpu'"),
    ]
    for index, (request, message) in enumerate(cases):
        folder = write_request(tmp_path / f"in{index}", request)
        output = tmp_path / f"out{index}"
        assert run_stage("unlearn", "original", folder, output, methods_dirs) == EXIT_BAD_INPUT
        result = read_result(output)
        assert result.status == "failed" and message in result.error, result.error
        assert [path.name for path in output.iterdir()] == ["result.json"]
    # No request at all, and an unknown method, through the CLI: exit 2, and result.json says why.
    args = ["method", "unlearn", *_dirs(methods_dirs), "--input", str(tmp_path / "empty")]
    assert main([*args, "--method", "original", "--output", str(tmp_path / "o1")]) == EXIT_BAD_INPUT
    assert "request.json: file not found" in read_result(tmp_path / "o1").error
    assert main([*args, "--method", "orignal", "--output", str(tmp_path / "o2")]) == EXIT_BAD_INPUT
    result = read_result(tmp_path / "o2")
    assert "did you mean 'original'" in result.error and result.method_version is None
    assert "failed: RegistryError" in capsys.readouterr().err


def test_method_comes_from_the_environment(base_model, methods_dirs, tmp_path: Path, monkeypatch) -> None:
    folder = write_request(tmp_path / "in", unlearn_request(base_model))
    monkeypatch.setenv("HMU_METHOD", "original")
    args = [
        "method",
        "unlearn",
        *_dirs(methods_dirs),
        "--input",
        str(folder),
        "--output",
        str(tmp_path / "out"),
    ]
    assert main(args) == EXIT_OK
    monkeypatch.delenv("HMU_METHOD")
    assert main(args) == 2  # no method named anywhere (and the output is no longer empty)


def test_a_non_empty_output_folder_is_refused(base_model, methods_dirs, tmp_path: Path) -> None:
    folder = write_request(tmp_path / "in", unlearn_request(base_model))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("from an earlier run")
    with pytest.raises(HMUError, match="must be empty, it holds stale.txt"):
        run_stage("unlearn", "original", folder, tmp_path / "out", methods_dirs)
    assert (tmp_path / "out" / "stale.txt").read_text() == "from an earlier run"
