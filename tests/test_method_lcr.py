"""methods/lcr and the code statistics it shares with code_ban (`benchmark.unlearning.codes`):
document-frequency statistics, the two rankings, the codebook edit, the keyed cache, and unlearn end to end
through the entrypoint on a random small model and a tiny generated dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from unlearning_support import (
    REPO_METHODS,
    changed_tensors,
    make_dataset,
    make_model,
    method_module,
    split_ids,
    state,
    write_request,
)

from benchmark.api.contract import ContractError
from benchmark.api.entrypoint import EXIT_METHOD_FAILED, EXIT_OK, run_stage
from benchmark.backbone.model import load_model, model_hash
from benchmark.cli.main import main
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.unlearning import codes

lcr = method_module("lcr")
TEXT_ENCODER = {"encoder": "none", "dim": 384}
"""LCR never encodes text: the test model records a stand-in encoder instead of loading MiniLM."""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lcr")
    data = make_dataset(root / "data")
    return {"root": root, "data": data, "model": make_model(root / "base", data, text_encoder=TEXT_ENCODER)}


# ----------------------------------------------------------------------------- statistics


def test_document_frequencies_count_each_code_once_per_document() -> None:
    # 3 documents, 4 tokens, 2 layers.
    tokens = torch.tensor(
        [
            [[1, 0], [1, 2], [3, 2], [1, 2]],  # layer 0: {1, 3}; layer 1: {0, 2}
            [[0, 0], [0, 0], [0, 0], [0, 0]],  # layer 0: {0};    layer 1: {0}
            [[3, 1], [4, 1], [1, 4], [3, 4]],  # layer 0: {1, 3, 4}; layer 1: {1, 4}
        ]
    )
    counts = codes.document_frequencies(tokens, nb_code=5)
    assert counts.tolist() == [[1, 2, 0, 2, 1], [2, 1, 1, 0, 1]]


def test_scores_are_the_originals_and_the_selection_is_the_union_of_both_top_k() -> None:
    forget = np.array([3, 1, 0, 5, 2, 2])
    retain = np.array([1, 0, 0, 10, 4, 4])
    raw, normalised = codes.code_scores(forget, retain)
    assert raw[0] == pytest.approx(3 / (1 + 1e-8)) and raw[1] == pytest.approx(1 / 1e-8)
    assert normalised[0] == pytest.approx((3 / 13) / (1 / 19 + 1e-8))
    # Ranking by s1: 1 (1e8), 0 (3), 3 (0.5), 4 = 5 (0.5, ties to the lower index); code 2 never occurs in a
    # forget motion and is never chosen, even with k past the occurring codes.
    assert codes.select_codes(forget, retain, 2) == [0, 1]
    assert codes.select_codes(forget, retain, 3) == [0, 1, 3]
    assert codes.select_codes(forget, retain, 6) == [0, 1, 3, 4, 5]
    # With a huge retain total the ε of s2 matters: s1 puts code 1 (n_r = 0) first, s2 code 0, so the union
    # of the top 1 of each holds both.
    forget = np.array([3, 1, 0])
    retain = np.array([1, 0, 10**8])
    raw, normalised = codes.code_scores(forget, retain)
    assert int(np.argmax(raw)) == 1 and int(np.argmax(normalised)) == 0
    assert codes.select_codes(forget, retain, 1) == [0, 1]


def test_crop_windows() -> None:
    rng = np.random.default_rng(0)
    assert codes.crop_windows(43, 4, 1, rng) == [(0, 40)]
    assert codes.crop_windows(3, 4, 5, rng) == []
    windows = codes.crop_windows(43, 4, 200, rng)
    assert len(windows) == 200
    assert {length for _, length in windows} == {36, 40}  # whole tokens, sometimes one fewer
    assert all(0 <= start and start + length <= 43 for start, length in windows)
    assert 0.2 < sum(length == 36 for _, length in windows) / 200 < 0.45  # MoMask's 1/3


def test_statistics_equal_encoding_each_motion_alone(world: dict[str, Path]) -> None:
    """Batching by length changes nothing: the counts equal a motion-by-motion encoding and np.unique."""
    backbone = load_model(world["model"]).backbone
    folder = HumanML3DFolder(world["data"])
    forget, retain = split_ids(world["data"])
    _, lengths = codes.read_motion_files(folder, forget + retain)
    statistics = codes.code_statistics(backbone, folder.features, lengths, forget, passes=1, seed=0)
    rvq = backbone.config.rvq
    expected = np.zeros((2, rvq.num_quantizers, rvq.nb_code), dtype=np.int64)
    for motion_id in forget + retain:
        motion = folder.features(motion_id)
        motion = motion[: len(motion) // 4 * 4]
        encoded = backbone.rvq.encode(backbone.normalise(torch.from_numpy(motion)[None]))[0].numpy()
        for layer in range(rvq.num_quantizers):
            expected[0 if motion_id in forget else 1, layer, np.unique(encoded[:, layer])] += 1
    assert np.array_equal(statistics.forget, expected[0])
    assert np.array_equal(statistics.retain, expected[1])
    assert statistics.documents.tolist() == [len(forget), len(retain)]
    crops = codes.code_statistics(backbone, folder.features, lengths, forget, passes=3, seed=0)
    assert crops.documents.tolist() == [3 * len(forget), 3 * len(retain)]


# ----------------------------------------------------------------------------- the edit


def test_replacement_is_the_target_plus_scaled_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    codebook = torch.randn(256, 16, generator=generator) * 3
    original = codebook.clone()
    censored = list(range(1, 201))
    noise = torch.randn(len(censored), 16, generator=generator)
    sigma = lcr.replace_codes(codebook, censored, 0, 0.5, noise)
    assert sigma == pytest.approx(float(original.std()))
    assert torch.allclose(codebook[censored], original[0] + 0.5 * sigma * noise)
    assert torch.equal(codebook[201:], original[201:]) and torch.equal(codebook[0], original[0])
    # The scale: (row - target) / sigma has the noise's unit std, times alpha.
    assert float(((codebook[censored] - original[0]) / sigma).std()) == pytest.approx(0.5, rel=0.05)


def test_orthogonal_variant_removes_the_mean_direction() -> None:
    generator = torch.Generator().manual_seed(1)
    codebook = torch.randn(32, 8, generator=generator) + 2.0  # a shared offset: a clear mean direction
    original = codebook.clone()
    censored = [3, 5, 8, 13]
    direction = original[censored].mean(0)
    direction = direction / direction.norm()
    lcr.orthogonalise_codes(codebook, censored, 1.0)
    assert torch.allclose(codebook[censored] @ direction, torch.zeros(4), atol=1e-5)
    untouched = [row for row in range(32) if row not in censored]
    assert torch.equal(codebook[untouched], original[untouched])
    half = original.clone()
    lcr.orthogonalise_codes(half, censored, 0.5)
    assert torch.allclose(half[censored] @ direction, 0.5 * (original[censored] @ direction), atol=1e-5)


def test_a_censored_target_is_redrawn_outside_every_edited_layer() -> None:
    assert lcr.choose_target(0, [[1, 2], [3]], 8, np.random.default_rng(0)) == 0
    drawn = {lcr.choose_target(0, [[0, 1, 2], [3]], 8, np.random.default_rng(seed)) for seed in range(50)}
    assert drawn == {4, 5, 6, 7}
    again = lcr.choose_target(0, [[0, 1, 2], [3]], 8, np.random.default_rng(7))
    assert again == lcr.choose_target(0, [[0, 1, 2], [3]], 8, np.random.default_rng(7))


# ----------------------------------------------------------------------------- the cache


def test_the_cache_key_follows_the_model_the_ids_and_the_data(world: dict[str, Path], tmp_path: Path) -> None:
    folder = HumanML3DFolder(world["data"])
    forget, retain = split_ids(world["data"])
    digests, _ = codes.read_motion_files(folder, forget + retain)
    backbone = load_model(world["model"]).backbone

    def key(**changes: object) -> str:
        arguments = {
            "backbone": backbone,
            "forget_ids": forget,
            "retain_ids": retain,
            "file_digests": digests,
            "passes": 1,
            "seed": 0,
        }
        arguments.update(changes)
        return json.dumps(codes.statistics_material(**arguments), sort_keys=True)

    base = key()
    assert key(forget_ids=forget[::-1], retain_ids=retain[::-1]) == base  # a set of motions, not a list
    assert key(seed=1) == base  # one full-length pass draws nothing
    assert key(passes=2) != base and key(passes=2, seed=1) != key(passes=2)
    assert key(forget_ids=forget[1:], retain_ids=retain + forget[:1]) != base
    assert key(file_digests={**digests, forget[0]: "0" * 64}) != base
    other = load_model(
        make_model(tmp_path / "other", world["data"], seed=1, text_encoder=TEXT_ENCODER)
    ).backbone
    assert key(backbone=other) != base
    # The transformers do not enter the key: an unlearned model with the same RVQ shares the statistics.
    with torch.no_grad():
        backbone.mask_transformer.cond_emb.weight.add_(1.0)
    assert key() == base


def test_a_stale_cache_entry_is_never_used(tmp_path: Path) -> None:
    cache = codes.StatisticsCache(tmp_path)
    calls = []

    def compute(value: int) -> object:
        def run():
            calls.append(value)
            counts = np.full((2, 4), value, dtype=np.int64)
            return codes.CodeStatistics(counts, counts, np.array([value, value]), np.zeros(2, dtype=np.int64))

        return run

    first, key, event = cache.lookup({"model": "a"}, compute(1), (2, 4))
    assert event == "miss" and int(first.forget[0, 0]) == 1
    again, same_key, event = cache.lookup({"model": "a"}, compute(2), (2, 4))
    assert event == "hit" and same_key == key and int(again.forget[0, 0]) == 1 and calls == [1]
    other, other_key, event = cache.lookup({"model": "b"}, compute(3), (2, 4))
    assert event == "miss" and other_key != key and int(other.forget[0, 0]) == 3
    # A file under b's name that holds a's entry (a copied or colliding file) is not used: recomputed.
    (tmp_path / f"{other_key}.npz").write_bytes((tmp_path / f"{key}.npz").read_bytes())
    fresh, _, event = cache.lookup({"model": "b"}, compute(4), (2, 4))
    assert event.startswith("replaced") and "another key" in event and int(fresh.forget[0, 0]) == 4
    (tmp_path / f"{key}.npz").write_bytes(b"not a zip")
    _, _, event = cache.lookup({"model": "a"}, compute(5), (2, 4))
    assert event.startswith("replaced") and calls == [1, 3, 4, 5]


# ----------------------------------------------------------------------------- end to end


def _unlearn(
    world: dict[str, Path], name: str, parameters: dict | None = None, seed: int = 0
) -> tuple[int, dict]:
    forget, retain = split_ids(world["data"])
    request = write_request(
        world["root"] / f"in-{name}", world["model"], world["data"], forget, retain, parameters, seed
    )
    output = world["root"] / f"out-{name}"
    code = run_stage("unlearn", "lcr", request, output, [REPO_METHODS])
    return code, json.loads((output / "result.json").read_text())


def test_unlearn_edits_only_the_base_codebook(world: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(codes.CACHE_ENV, str(tmp_path / "cache"))
    code, result = _unlearn(world, "replace", {"k": 4, "alpha": 0.5})
    assert code == EXIT_OK, result
    model = world["root"] / "out-replace" / "model"
    # The transformers (and every other tensor) are bit-identical: only the decoding of codes changes.
    assert changed_tensors(world["model"], model) == ["rvq.quantizer.layers.0.codebook"]
    record = load_model(model).card.provenance["record"]
    censored = record["censored_codes"]
    assert len(censored) == 1 and 1 <= len(censored[0]) <= 8
    assert record["noise_seed"] == 0
    assert result["messages"][0].startswith(f"code statistics {record['statistics_key'][:12]}: miss")
    # The rows are the target's plus alpha * sigma * the seeded noise, exactly as recorded.
    before = state(world["model"])["rvq.quantizer.layers.0.codebook"]
    after = state(model)["rvq.quantizer.layers.0.codebook"]
    noise = torch.randn(len(censored[0]), before.shape[1], generator=torch.Generator().manual_seed(0))
    target = record["target_code"]
    assert target not in censored[0]
    assert torch.allclose(after[censored[0]], before[target] + 0.5 * record["sigma"][0] * noise, atol=1e-5)
    uncensored = [row for row in range(len(before)) if row not in censored[0]]
    assert torch.equal(after[uncensored], before[uncensored])
    # Same request again: the shared cache is hit and the model is the same, hash for hash.
    code, again = _unlearn(world, "replace-again", {"k": 4, "alpha": 0.5})
    assert code == EXIT_OK and "hit" in again["messages"][0]
    assert again["model_hash"] == result["model_hash"] == model_hash(model)


def test_unlearn_orthogonal_on_two_layers(world: dict[str, Path]) -> None:
    code, result = _unlearn(world, "orthogonal", {"mode": "orthogonal", "layers": 2, "k": 8})
    assert code == EXIT_OK, result
    model = world["root"] / "out-orthogonal" / "model"
    changed = changed_tensors(world["model"], model)
    assert changed == ["rvq.quantizer.layers.0.codebook", "rvq.quantizer.layers.1.codebook"]
    record = load_model(model).card.provenance["record"]
    assert (
        record["mode"] == "orthogonal" and len(record["censored_codes"]) == 2 and "target_code" not in record
    )


def test_bad_parameters_name_the_field(world: dict[str, Path]) -> None:
    code, result = _unlearn(world, "bad-layers", {"layers": 9})
    assert code == EXIT_METHOD_FAILED and "parameters.layers" in result["error"]
    backbone = load_model(world["model"]).backbone
    parameters = {
        "k": 16,
        "layers": 1,
        "alpha": 1.0,
        "mode": "swap",
        "target_code": 0,
        "statistics_passes": 1,
    }
    with pytest.raises(ContractError, match="parameters.mode"):
        lcr.LCRSettings.from_parameters(parameters, backbone)


def test_methods_validate() -> None:
    assert main(["methods", "validate", "lcr", "uce", "rece"]) == 0
