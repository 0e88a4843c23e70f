"""methods/uce and methods/rece end to end through the entrypoint on a random small model (MiniLM text
features): only the two text projections change, the saved weights are the closed form recomputed here,
the keywords' outputs move to their targets, and RECE's adversarial embeddings behave as the paper's
(pre-edit reference) or the HMU code's (edited reference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from unlearning_support import (
    KEYWORDS,
    REPO_METHODS,
    changed_tensors,
    make_dataset,
    make_model,
    split_ids,
    state,
    write_request,
)

from benchmark.api.entrypoint import EXIT_METHOD_FAILED, EXIT_OK, run_stage
from benchmark.api.registry import discover_methods
from benchmark.backbone.generation import text_encoder_for
from benchmark.backbone.model import load_model
from benchmark.unlearning.closed_form import (
    TEXT_PROJECTIONS,
    EditEmbeddings,
    adversarial_embeddings,
    encode_edit_texts,
    erasure_values,
    layer_output,
    uce_weight,
)

PROJECTIONS = [f"{name}.weight" for name in TEXT_PROJECTIONS]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("uce")
    data = make_dataset(root / "data")
    return {"root": root, "data": data, "model": make_model(root / "base", data)}


@pytest.fixture(scope="module")
def embeddings(world: dict[str, Path]) -> EditEmbeddings:
    """The texts of the default edit, encoded here with the model's own encoder."""
    model = load_model(world["model"])
    retain_words = discover_methods(REPO_METHODS).get("uce").spec.defaults["retain_words"]
    return encode_edit_texts(text_encoder_for(model.card), KEYWORDS, retain_words, "")


def _unlearn(
    world: dict[str, Path], method: str, run: str, parameters: dict | None = None
) -> tuple[int, dict]:
    forget, retain = split_ids(world["data"])
    request = write_request(
        world["root"] / f"in-{run}", world["model"], world["data"], forget, retain, parameters
    )
    output = world["root"] / f"out-{run}"
    code = run_stage("unlearn", method, request, output, [REPO_METHODS])
    return code, json.loads((output / "result.json").read_text())


def _weights(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    tensors = state(path)
    return {name: (tensors[f"{name}.weight"], tensors[f"{name}.bias"]) for name in TEXT_PROJECTIONS}


def _uce(
    weight: torch.Tensor, bias: torch.Tensor, forget: torch.Tensor, embeddings: EditEmbeddings
) -> torch.Tensor:
    return uce_weight(
        weight,
        bias,
        forget,
        embeddings.targets,
        embeddings.retain,
        lamb=0.1,
        erase_scale=0.1,
        preserve_scale=0.5,
    )


def test_uce_edits_the_text_projections_only(world: dict[str, Path], embeddings: EditEmbeddings) -> None:
    code, result = _unlearn(world, "uce", "uce")
    assert code == EXIT_OK, result
    model = world["root"] / "out-uce" / "model"
    assert changed_tensors(world["model"], model) == sorted(PROJECTIONS)
    record = load_model(model).card.provenance["record"]
    assert record["forget_texts"] == list(KEYWORDS) and record["target_text"] == ""
    assert record["edited"] == PROJECTIONS and len(record["retain_texts"]) == 21
    before, after = _weights(world["model"]), _weights(model)
    for name, (weight, bias) in before.items():
        new, new_bias = after[name]
        assert torch.equal(new_bias, bias)
        # The saved weight is the closed form, recomputed here from the base weight.
        assert torch.allclose(new, _uce(weight, bias, embeddings.forget, embeddings), atol=1e-6)
        # Every keyword's output is closer to its target, and the retain words' outputs move far less.
        values = erasure_values(weight, bias, embeddings.forget, embeddings.targets)
        old_miss = (layer_output(weight, bias, embeddings.forget) - values).norm(dim=1)
        new_miss = (layer_output(new, bias, embeddings.forget) - values).norm(dim=1)
        assert bool((new_miss < old_miss).all())
        retain_moved = layer_output(new, bias, embeddings.retain) - layer_output(
            weight, bias, embeddings.retain
        )
        forget_moved = layer_output(new, bias, embeddings.forget) - layer_output(
            weight, bias, embeddings.forget
        )
        assert retain_moved.norm(dim=1).mean() < 0.5 * forget_moved.norm(dim=1).mean()


def test_rece_with_pre_edit_weights_erases_the_adversarial_embedding(
    world: dict[str, Path], embeddings: EditEmbeddings
) -> None:
    code, result = _unlearn(world, "rece", "rece-pre", {"epochs": 1})
    assert code == EXIT_OK, result
    model = world["root"] / "out-rece-pre" / "model"
    assert changed_tensors(world["model"], model) == sorted(PROJECTIONS)
    originals, firsts = [], []
    for weight, bias in _weights(world["model"]).values():
        originals.append(weight)
        firsts.append(_uce(weight, bias, embeddings.forget, embeddings))
    adversarial = adversarial_embeddings(firsts, originals, embeddings.forget, regularisation=1e-3)
    # After the UCE edit, c_adv makes the edited layers give back what the original layers gave c_f
    # (2 x 128 outputs < 384 inputs: reachable up to the pull towards 0), which c_f itself no longer does.
    for first, original in zip(firsts, originals, strict=True):
        wanted = embeddings.forget.double() @ original.double().T
        residual = (adversarial.double() @ first.double().T - wanted).norm()
        assert residual < 0.05 * (embeddings.forget.double() @ first.double().T - wanted).norm()
    # The saved weights are a second UCE edit with c_adv as the forget embeddings.
    after = _weights(model)
    for name, first in zip(TEXT_PROJECTIONS, firsts, strict=True):
        bias = after[name][1]
        assert torch.allclose(after[name][0], _uce(first, bias, adversarial, embeddings), atol=1e-5)
    rounds = load_model(model).card.provenance["record"]["rounds"]
    assert len(rounds) == 1 and len(rounds[0]["cosine_to_forget"]) == len(KEYWORDS)


def test_rece_with_edited_weights_stays_near_the_forget_embedding(world: dict[str, Path]) -> None:
    code, result = _unlearn(world, "rece", "rece-edited", {"epochs": 2, "adversarial_weights": "edited"})
    assert code == EXIT_OK, result
    edited = load_model(world["root"] / "out-rece-edited" / "model").card.provenance["record"]
    pre = load_model(world["root"] / "out-rece-pre" / "model").card.provenance["record"]
    assert edited["adversarial_weights"] == "edited" and len(edited["rounds"]) == 2
    # The HMU code's c_adv is (about) c_f projected on the edited layers' row space: 256 of the 384
    # dimensions here, so a cosine near 0.7 (at the published size the row space is all of the 512
    # dimensions and c_adv ≈ c_f); RECE's c_adv points much further away.
    edited_cosine = torch.tensor(edited["rounds"][0]["cosine_to_forget"]).mean()
    pre_cosine = torch.tensor(pre["rounds"][0]["cosine_to_forget"]).mean()
    assert edited_cosine > 0.6 and pre_cosine < edited_cosine - 0.2


def test_bad_parameters_name_the_field(world: dict[str, Path]) -> None:
    code, result = _unlearn(world, "uce", "uce-lamb", {"lamb": 0.0})
    assert code == EXIT_METHOD_FAILED and "'lamb'" in result["error"]
    code, result = _unlearn(world, "rece", "rece-weights", {"adversarial_weights": "original"})
    assert code == EXIT_METHOD_FAILED and "parameters.adversarial_weights" in result["error"]
