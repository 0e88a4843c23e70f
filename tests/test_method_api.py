"""The contract's JSON documents and method.yaml: exact round trips, strict reading, sweeps, parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.api.contract import (
    INTERFACE_VERSION,
    ConceptRef,
    ContractError,
    DataSubset,
    GenerateRequest,
    MethodDescription,
    Resources,
    StageResult,
    TaskRef,
    UnlearnProvenance,
    UnlearnRequest,
)
from benchmark.api.method_yaml import load_method_yaml
from benchmark.errors import ConfigError

UNLEARN_JSON = {
    "schema": "hmu.unlearn-request/1",
    "task": {"name": "embedded_violence", "version": 1},
    "concept": {"name": "violence", "keywords": ["kick", "punch"], "pos": {"box": ["VERB"]}},
    "base_model": "base_model",
    "data_dir": "/data/embedded",
    "forget": {"motion_ids": ["000001", "000002"], "prompts": ["a person kicks"], "split": "train_val"},
    "retain": {"motion_ids": ["000003"], "prompts": ["a person walks"], "split": "train_val"},
    "seed": 3,
    "parameters": {"k": 16, "alpha": 1.0, "layers": [0, 1]},
    "time_budget_s": 600.0,
    "device": "cpu",
    "clip_weights": None,
}

GENERATE_JSON = {
    "schema": "hmu.generate-request/1",
    "model": "model",
    "prompts": "prompts.json",
    "settings": {"timesteps": 2, "cond_scale": 4.0},
    "seed": 0,
    "device": None,
    "clip_weights": "/weights/ViT-B-32.pt",
}

RESULT_JSON = {
    "schema": "hmu.method-result/1",
    "status": "ok",
    "verb": "unlearn",
    "method": "lcr",
    "method_version": 2,
    "interface_version": 1,
    "wall_seconds": 12.5,
    "device": "cpu",
    "parameters": {"k": 16},
    "messages": ["censored 17 codes"],
    "outputs": ["model"],
    "error": None,
    "error_type": None,
    "model_hash": "ab" * 32,
    "num_motions": None,
}

DESCRIPTION_JSON = {
    "schema": "hmu.method-description/1",
    "name": "lcr",
    "version": 2,
    "interface_version": 1,
    "description": "Latent Code Replacement.",
    "parameters": {"k": 16, "alpha": 1.0},
    "sweep": {"k": [4, 8, 16]},
    "backbones": ["momask"],
    "resources": {"cpus": 2, "memory_gb": 4.0, "gpu": "optional", "time_limit_s": 600.0},
}

PROVENANCE_JSON = {
    "kind": "unlearned",
    "method": "lcr",
    "method_version": 2,
    "interface_version": 1,
    "parameters": {"k": 16},
    "parent": "cd" * 32,
    "task": {"name": "embedded_violence", "version": 1},
    "concept": "violence",
    "seed": 0,
    "record": {"censored": [1, 5, 9]},
}

DOCUMENTS = [
    (UnlearnRequest, UNLEARN_JSON),
    (GenerateRequest, GENERATE_JSON),
    (StageResult, RESULT_JSON),
    (MethodDescription, DESCRIPTION_JSON),
    (UnlearnProvenance, PROVENANCE_JSON),
]


@pytest.mark.parametrize(("cls", "data"), DOCUMENTS, ids=lambda x: getattr(x, "__name__", ""))
def test_documents_mirror_their_json_exactly(cls, data) -> None:
    document = cls.from_json(data, "doc.json")
    assert document.to_json() == data
    assert list(document.to_json()) == list(data)  # same keys, same order
    again = cls.from_json(json.loads(json.dumps(document.to_json())), "doc.json")
    assert again == document


def test_parsed_values_are_typed() -> None:
    request = UnlearnRequest.from_json(UNLEARN_JSON, "request.json")
    assert request.task == TaskRef("embedded_violence", 1)
    assert request.concept == ConceptRef("violence", ("kick", "punch"), {"box": ("VERB",)})
    assert request.forget == DataSubset(("000001", "000002"), ("a person kicks",))
    assert request.base_model == Path("base_model") and request.clip_weights is None


def test_fields_with_defaults_may_be_left_out() -> None:
    data = {"schema": "hmu.generate-request/1", "model": "m", "prompts": "p.json"}
    request = GenerateRequest.from_json(data, "request.json")
    assert (request.settings, request.seed, request.device, request.clip_weights) == ({}, 0, None, None)
    assert set(request.to_json()) == set(GENERATE_JSON)  # written in full


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"sed": 1}, "sed", "did you mean 'seed'"),
        ({"forget": {**UNLEARN_JSON["forget"], "motion_id": []}}, "forget.motion_id", "unknown field"),
        ({"seed": "3"}, "seed", "expected an integer"),
        ({"seed": True}, "seed", "expected an integer"),
        ({"seed": -1}, "seed", "must be >= 0"),
        ({"time_budget_s": "long"}, "time_budget_s", "a number or null"),
        ({"concept": {"name": "violence", "keywords": []}}, "concept.keywords", "must not be empty"),
        ({"concept": {"name": "violence", "keywords": ["kick", 3]}}, "concept.keywords[1]", "a string"),
        ({"task": {"name": "t", "version": 0}}, "task.version", ">= 1"),
        ({"base_model": ""}, "base_model", "empty"),
        ({"parameters": {"k": float("nan")}}, "parameters.k", "finite"),
        ({"retain": {"motion_ids": ["000001"], "prompts": []}}, "retain.motion_ids", "also in forget"),
        ({"forget": {"motion_ids": ["a"], "prompts": [], "split": "test"}}, "forget.split", "test split"),
        ({"schema": "hmu.unlearn-request/2"}, "schema", "interface version 1"),
    ],
)
def test_bad_request_names_file_and_field(change, field, message) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        UnlearnRequest.from_json({**UNLEARN_JSON, **change}, "in/request.json")
    assert caught.value.field == field
    assert caught.value.path == Path("in/request.json")


def test_missing_field_and_schema_are_named() -> None:
    data = {key: value for key, value in UNLEARN_JSON.items() if key != "data_dir"}
    with pytest.raises(ConfigError, match="field 'data_dir': missing"):
        UnlearnRequest.from_json(data, "request.json")
    data = {key: value for key, value in UNLEARN_JSON.items() if key != "schema"}
    with pytest.raises(ConfigError, match="field 'schema': missing"):
        UnlearnRequest.from_json(data, "request.json")
    with pytest.raises(ConfigError, match="expected an object"):
        UnlearnRequest.from_json([UNLEARN_JSON], "request.json")


def test_requests_resolve_relative_paths_only() -> None:
    request = UnlearnRequest.from_json(UNLEARN_JSON, "request.json").resolved(Path("/hmu/input"))
    assert request.base_model == Path("/hmu/input/base_model")
    assert request.data_dir == Path("/data/embedded")
    assert request.clip_weights is None
    generate = GenerateRequest.from_json(GENERATE_JSON, "request.json").resolved(Path("runs/in"))
    assert (generate.model, generate.prompts) == (Path("runs/in/model"), Path("runs/in/prompts.json"))
    assert generate.clip_weights == Path("/weights/ViT-B-32.pt")


def test_generation_settings_are_checked_by_name() -> None:
    request = GenerateRequest.from_json(GENERATE_JSON, "request.json")
    settings = request.generation_settings()
    assert (settings.timesteps, settings.cond_scale, settings.temperature) == (2, 4.0, 1.0)
    for bad, field, message in [
        ({"timestep": 2}, "settings.timestep", "did you mean 'timesteps'"),
        ({"timesteps": 2.5}, "settings.timesteps", "an integer"),
        ({"gumbel": 1}, "settings.gumbel", "true or false"),
        ({"timesteps": 0}, "settings", "timesteps must be >= 1"),
    ]:
        with pytest.raises(ContractError, match=message) as caught:
            GenerateRequest.from_json({**GENERATE_JSON, "settings": bad}, "r.json").generation_settings()
        assert caught.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model_hash": None}, "model_hash"),  # an ok unlearn names its model
        ({"error": "boom"}, "error"),  # ok and an error
        ({"status": "failed"}, "error"),  # failed without a reason
        ({"status": "failed", "error": "boom", "model_hash": None}, "outputs"),  # failed with outputs
        ({"outputs": ["../escape"]}, "outputs[0]"),
        ({"verb": "describe"}, "verb"),
    ],
)
def test_result_rules(change, field) -> None:
    with pytest.raises(ConfigError) as caught:
        StageResult.from_json({**RESULT_JSON, **change}, "out/result.json")
    assert caught.value.field == field


def test_failed_result() -> None:
    data = {
        **RESULT_JSON,
        "status": "failed",
        "outputs": [],
        "model_hash": None,
        "error": "boom",
        "error_type": "RuntimeError",
    }
    assert StageResult.from_json(data, "result.json").to_json() == data


def test_description_rules() -> None:
    with pytest.raises(ConfigError, match="speaks 1") as caught:
        MethodDescription.from_json({**DESCRIPTION_JSON, "interface_version": 2}, "describe")
    assert caught.value.field == "interface_version"
    with pytest.raises(ConfigError, match="one of 'none', 'optional', 'required'") as caught:
        MethodDescription.from_json(
            {**DESCRIPTION_JSON, "resources": {**DESCRIPTION_JSON["resources"], "gpu": "yes"}}, "describe"
        )
    assert caught.value.field == "resources.gpu"
    assert INTERFACE_VERSION == 1


# ----------------------------------------------------------------------------- method.yaml

LCR_YAML = """\
name: lcr
version: 2
description: Latent Code Replacement.
class: method:LCRMethod
backbones: [momask]
defaults: {k: 16, alpha: 1.0, orth: false, layers: 1, target: null}
sweep:
  k: [4, 8, 16, 32, 64]
resources: {cpus: 2, memory_gb: 4, gpu: optional, time_limit_s: 600}
"""


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "method.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_method_yaml_reads_into_a_spec(tmp_path: Path) -> None:
    spec = load_method_yaml(_yaml(tmp_path, LCR_YAML))
    assert (spec.name, spec.version, spec.module, spec.class_name) == ("lcr", 2, "method", "LCRMethod")
    assert spec.resources == Resources(cpus=2, memory_gb=4.0, gpu="optional", time_limit_s=600.0)
    assert spec.to_json()["class"] == "method:LCRMethod"
    assert spec.description_record().to_json() == {
        **DESCRIPTION_JSON,
        "parameters": {"k": 16, "alpha": 1.0, "orth": False, "layers": 1, "target": None},
        "sweep": {"k": [4, 8, 16, 32, 64]},
    }


def test_sweep_expands_to_named_runs(tmp_path: Path) -> None:
    spec = load_method_yaml(_yaml(tmp_path, LCR_YAML))
    runs = spec.runs()
    assert [run.name for run in runs] == ["lcr-k4", "lcr-k8", "lcr-k16", "lcr-k32", "lcr-k64"]
    assert runs[2].parameters == {"k": 16, "alpha": 1.0, "orth": False, "layers": 1, "target": None}

    grid = LCR_YAML.replace("  k: [4, 8, 16, 32, 64]", "  k: [8, 16]\n  alpha: [0.5, 1]\n  orth: [true]")
    runs = load_method_yaml(_yaml(tmp_path, grid)).runs()
    assert [run.name for run in runs] == [
        "lcr-k8-alpha0.5-orthtrue",
        "lcr-k8-alpha1.0-orthtrue",
        "lcr-k16-alpha0.5-orthtrue",
        "lcr-k16-alpha1.0-orthtrue",
    ]
    assert runs[1].parameters["alpha"] == 1.0 and isinstance(runs[1].parameters["alpha"], float)

    no_sweep = load_method_yaml(_yaml(tmp_path, LCR_YAML.replace("sweep:\n  k: [4, 8, 16, 32, 64]\n", "")))
    assert [(run.name, run.parameters["k"]) for run in no_sweep.runs()] == [("lcr", 16)]


def test_parameters_are_resolved_against_the_defaults(tmp_path: Path) -> None:
    spec = load_method_yaml(_yaml(tmp_path, LCR_YAML))
    resolved = spec.resolve_parameters({"k": 8, "alpha": 2, "target": [1, 2]})
    assert resolved == {"k": 8, "alpha": 2.0, "orth": False, "layers": 1, "target": [1, 2]}
    assert isinstance(resolved["alpha"], float)
    with pytest.raises(ContractError, match="did you mean 'alpha'") as caught:
        spec.resolve_parameters({"alpah": 2.0})
    assert caught.value.field == "parameters.alpah"
    with pytest.raises(ContractError, match="expected int like the default 16"):
        spec.resolve_parameters({"k": 8.5})
    with pytest.raises(ContractError, match="expected bool"):
        spec.resolve_parameters({"orth": 1})


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("version: 2", "version: two", "version", "an integer"),
        ("class: method:LCRMethod", "class: LCRMethod", "class", "'<module>:<Class>'"),
        ("name: lcr", "name: LCR", "name", "snake_case"),
        ("backbones: [momask]", "backbones: [bamm]", "backbones[0]", "unknown backbone"),
        ("  k: [4, 8, 16, 32, 64]", "  kk: [4]", "sweep.kk", "did you mean 'k'"),
        ("  k: [4, 8, 16, 32, 64]", "  k: []", "sweep.k", "at least one value"),
        ("  k: [4, 8, 16, 32, 64]", "  k: [4, 4]", "sweep.k", "twice"),
        ("  k: [4, 8, 16, 32, 64]", "  k: [4, 8.5]", "sweep.k[1]", "expected int"),
        ("  k: [4, 8, 16, 32, 64]", "  alpha: [1e-3]", "sweep.alpha[0]", "write 1.0e-3"),
        ("gpu: optional", "gpu: sometimes", "resources.gpu", "one of"),
        ("time_limit_s: 600", "time_limit: 600", "resources.time_limit", "did you mean 'time_limit_s'"),
        ("description: Latent Code Replacement.", "descripton: x", "descripton", "did you mean"),
    ],
)
def test_bad_method_yaml_names_file_and_field(tmp_path: Path, old, new, field, message) -> None:
    assert old in LCR_YAML
    path = _yaml(tmp_path, LCR_YAML.replace(old, new))
    with pytest.raises(ConfigError, match=message) as caught:
        load_method_yaml(path)
    assert caught.value.field == field and caught.value.path == path


def test_method_yaml_syntax_and_shape_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_method_yaml(_yaml(tmp_path, "name: [lcr\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_method_yaml(_yaml(tmp_path, "- lcr\n"))
    without_resources = "".join(
        line for line in LCR_YAML.splitlines(True) if not line.startswith("resources")
    )
    with pytest.raises(ConfigError, match="field 'resources': missing"):
        load_method_yaml(_yaml(tmp_path, without_resources))


def test_a_method_image_is_planned_from_its_description(tmp_path: Path) -> None:
    """An external image has no method.yaml: its `describe` gives the spec the bench expands (no class);
    a method.yaml must still name its class."""
    from benchmark.api.method_yaml import MethodSpec

    spec = load_method_yaml(_yaml(tmp_path, LCR_YAML))
    from_image = MethodSpec.from_description(spec.description_record())
    assert from_image.class_ref is None
    assert [run.name for run in from_image.runs()] == [run.name for run in spec.runs()]
    assert from_image.resolve_parameters({"k": 8}) == spec.resolve_parameters({"k": 8})
    with pytest.raises(ContractError, match="is an image"):
        _ = from_image.module
    without_class = "".join(line for line in LCR_YAML.splitlines(True) if not line.startswith("class"))
    with pytest.raises(ConfigError, match="missing") as caught:
        load_method_yaml(_yaml(tmp_path, without_class))
    assert caught.value.field == "class"
