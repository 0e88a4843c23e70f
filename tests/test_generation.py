"""Generation: prompt files, shapes and lengths, determinism independent of batching, motions.npz checks."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.backbone.config import BackboneConfig
from benchmark.backbone.generation import (
    GenerationError,
    GenerationSettings,
    Prompt,
    generate_motions,
    read_motions,
    read_prompts,
    text_encoder_for,
    write_motions,
    write_prompts,
)
from benchmark.backbone.model import Backbone, load_model, read_model_card, save_model
from benchmark.backbone.transformers import SamplingStep
from benchmark.cli.main import main
from benchmark.errors import ConfigError, DataFormatError
from benchmark.text.base import TextEncoderError
from benchmark.text.encoders import build_text_encoder

FAST = GenerationSettings(timesteps=3)
"""Fewer decoding steps than MoMask's 10: the properties tested do not depend on the count."""


@pytest.fixture(scope="module")
def encoder():
    return build_text_encoder("minilm")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, encoder) -> Path:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    backbone = Backbone(
        BackboneConfig.small(), rng.normal(size=263), rng.uniform(0.5, 2.0, size=263), length_estimator=True
    )
    with torch.no_grad():  # an untrained RVQ has all-zero codebooks: every code would decode alike
        for codebook in backbone.rvq.codebooks:
            codebook.normal_()
    path = tmp_path_factory.mktemp("models") / "small"
    dataset = {"name": "embedded", "fps": 20.0, "feature_dim": 263}
    save_model(backbone, path, text_encoder_identity=encoder.identity(), dataset=dataset)
    return path


@pytest.fixture(scope="module")
def backbone(model_dir) -> Backbone:
    return load_model(model_dir, device="cpu").backbone


PROMPTS = [
    Prompt("walk", "a person walks forward", 40, repeats=2, seed=1),
    Prompt("kick", "a person kicks with the right leg", 81, repeats=1, seed=2),
    Prompt("wave", "someone waves both hands", 17, repeats=3, seed=3),
]


def test_keys_shapes_and_lengths(backbone, encoder) -> None:
    motions = generate_motions(backbone, encoder, PROMPTS, FAST)
    assert list(motions) == ["walk/0", "walk/1", "kick/0", "wave/0", "wave/1", "wave/2"]
    for key, motion in motions.items():
        frames = {"walk": 40, "kick": 81, "wave": 17}[key.split("/")[0]]
        assert motion.shape == (frames, 263) and motion.dtype == np.float32  # 81 frames: 21 tokens, cropped
        assert np.isfinite(motion).all()
    assert not np.array_equal(motions["walk/0"], motions["walk/1"])  # repeats differ


def test_same_seeds_and_settings_give_the_same_motions(backbone, encoder) -> None:
    first = generate_motions(backbone, encoder, PROMPTS, FAST)
    second = generate_motions(backbone, encoder, PROMPTS, FAST)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    reseeded = generate_motions(backbone, encoder, [Prompt("kick", PROMPTS[1].text, 81, 1, seed=5)], FAST)
    assert not np.allclose(reseeded["kick/0"], first["kick/0"])


def test_each_sample_draws_from_its_own_generator(backbone, encoder) -> None:
    """Batching changes only float rounding, never whose random numbers a sample uses: with one step the
    confidence ranking (the only place rounding could flip a choice) plays no part, so batch size 1 and 8
    and a prompt alone must agree."""
    one_step = GenerationSettings(timesteps=1, batch_size=1)
    by_batch = {
        size: generate_motions(backbone, encoder, PROMPTS, replace(one_step, batch_size=size))
        for size in (1, 8)
    }
    alone = generate_motions(backbone, encoder, [PROMPTS[1]], replace(one_step, batch_size=8))
    for key in by_batch[1]:
        np.testing.assert_allclose(by_batch[1][key], by_batch[8][key], rtol=0, atol=1e-4, err_msg=key)
    np.testing.assert_allclose(alone["kick/0"], by_batch[8]["kick/0"], rtol=0, atol=1e-4)


def test_generation_leaves_the_training_mode_alone(backbone, encoder) -> None:
    backbone.train()
    try:
        generate_motions(backbone, encoder, PROMPTS[:1], FAST)
        assert backbone.training and backbone.rvq.training
    finally:
        backbone.eval()


def test_length_estimator_draws_one_length_per_prompt(backbone, encoder, tmp_path: Path) -> None:
    prompts = [Prompt("free", "a person jumps", None, repeats=3, seed=4)]
    motions = generate_motions(backbone, encoder, prompts, FAST)
    lengths = {len(motion) for motion in motions.values()}
    assert len(lengths) == 1 and lengths.pop() % 4 == 0  # whole tokens, shared by the repeats
    no_estimator = Backbone(backbone.config, backbone.mean, backbone.std, length_estimator=False)
    with pytest.raises(GenerationError, match="'free' has no length"):
        generate_motions(no_estimator, encoder, prompts, FAST)


def test_too_long_prompt_is_refused(backbone, encoder) -> None:
    frames = backbone.config.mask.max_len * 4 + 1
    with pytest.raises(GenerationError, match=r"prompt 'long'.*at most 256"):
        generate_motions(backbone, encoder, [Prompt("long", "walk", frames)], FAST)


def test_output_is_de_normalised(backbone, encoder) -> None:
    # With a tiny std the model's output collapses onto its mean: the features are de-normalised.
    mean = np.linspace(-3, 3, 263).astype(np.float32)
    squeezed = Backbone(backbone.config, mean, np.full(263, 1e-6), length_estimator=False)
    squeezed.load_state_dict(backbone.state_dict(), strict=False)
    motion = generate_motions(squeezed, encoder, [Prompt("p", "walk", 8)], FAST)["p/0"]
    np.testing.assert_allclose(motion, np.broadcast_to(mean, motion.shape), atol=1e-3)


def test_logits_processor_sees_every_layer_and_can_forbid_tokens(backbone, encoder) -> None:
    layers: set[int] = set()
    base_ids: list[torch.Tensor] = []

    def only_code_7(logits: torch.Tensor, step: SamplingStep) -> torch.Tensor:
        layers.add(step.layer)
        if step.layer == 1:
            base_ids.append(step.ids)  # the residual pass for layer 1 is fed the base layer
        if step.layer > 0:
            return logits
        forbidden = torch.full_like(logits, float("-inf"))
        forbidden[..., 7] = logits[..., 7]
        return forbidden

    prompt = [Prompt("p", "walk", 16)]
    plain = generate_motions(backbone, encoder, prompt, FAST)["p/0"]
    steered = generate_motions(backbone, encoder, prompt, FAST, logits_processor=only_code_7)["p/0"]
    assert layers == set(range(backbone.config.rvq.num_quantizers))
    assert all(bool((ids == 7).all()) for ids in base_ids)
    assert not np.allclose(plain, steered)


def test_read_prompts_json_and_jsonl(tmp_path: Path) -> None:
    write_prompts(tmp_path / "p.json", PROMPTS)
    assert read_prompts(tmp_path / "p.json") == PROMPTS
    lines = ['{"id": "a", "text": "walk"}', "", '{"id": "b", "text": "run", "length": null, "repeats": 2}']
    (tmp_path / "p.jsonl").write_text("\n".join(lines))
    assert read_prompts(tmp_path / "p.jsonl") == [Prompt("a", "walk"), Prompt("b", "run", None, 2)]


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        ([{"id": "a", "text": "walk", "length": 0}], "[0].length"),
        ([{"id": "a", "text": "walk"}, {"id": "b", "text": ""}], "[1].text"),
        ([{"id": "a/b", "text": "walk"}], "[0].id"),
        ([{"id": "a", "text": "walk", "lenght": 40}], "[0].lenght"),
        ([{"id": "a", "text": "walk", "repeats": True}], "[0].repeats"),
        ([{"id": "a", "text": "walk"}, {"id": "a", "text": "run"}], "[1].id"),
        ([{"text": "walk"}], "[0].id"),
    ],
)
def test_bad_prompt_entries_name_file_and_field(tmp_path: Path, entries: list, field: str) -> None:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ConfigError, match=rf"prompts\.json: field '{re.escape(field)}'"):
        read_prompts(path)


def test_motions_npz_round_trip_and_validation(tmp_path: Path) -> None:
    motions = {"a/0": np.zeros((12, 263), np.float32), "a/1": np.ones((9, 263), np.float32)}
    write_motions(tmp_path / "m.npz", motions)
    back = read_motions(tmp_path / "m.npz", prompts=[Prompt("a", "walk", None, repeats=2)])
    assert list(back) == ["a/0", "a/1"] and all(np.array_equal(back[k], motions[k]) for k in motions)
    with pytest.raises(DataFormatError, match="asked for 12"):
        read_motions(tmp_path / "m.npz", prompts=[Prompt("a", "walk", 12, repeats=2)])
    with pytest.raises(DataFormatError, match=r"missing motions \['a/2'\]"):
        read_motions(tmp_path / "m.npz", prompts=[Prompt("a", "walk", None, repeats=3)])
    for bad, message in (
        (np.full((4, 263), np.nan, np.float32), "NaN"),
        (np.zeros((4, 251), np.float32), "shape"),
        (np.zeros((4, 263), np.float64), "float32"),
    ):
        with pytest.raises(DataFormatError, match=message):
            write_motions(tmp_path / "bad.npz", {"a/0": bad})
    np.savez(tmp_path / "nan.npz", **{"a/0": np.full((4, 263), np.inf, np.float32)})
    with pytest.raises(DataFormatError, match=r"nan\.npz: a/0: holds NaN"):
        read_motions(tmp_path / "nan.npz")


def test_text_encoder_must_match_the_model(model_dir: Path) -> None:
    card = read_model_card(model_dir)
    assert text_encoder_for(card).identity()["weights_sha256"] == card.text_encoder["weights_sha256"]
    other = type(card)(
        card.config, {**card.text_encoder, "weights_sha256": "0" * 64}, card.dataset, card.parts
    )
    with pytest.raises(TextEncoderError, match="weights_sha256"):
        text_encoder_for(other)
    with pytest.raises(GenerationError, match="CLIP weights"):
        text_encoder_for(card, clip_weights="ViT-B-32.pt")


def test_cli_generate(model_dir: Path, tmp_path: Path, capsys) -> None:
    write_prompts(tmp_path / "prompts.json", PROMPTS[:2])
    out = tmp_path / "motions.npz"
    args = [
        "generate",
        "--model",
        str(model_dir),
        "--prompts",
        str(tmp_path / "prompts.json"),
        "--out",
        str(out),
    ]
    assert main([*args, "--device", "cpu", "--timesteps", "2", "--batch-size", "2"]) == 0
    motions = read_motions(out, prompts=PROMPTS[:2])
    assert [m.shape for m in motions.values()] == [(40, 263), (40, 263), (81, 263)]
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
