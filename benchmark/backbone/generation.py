"""Text -> motion with a backbone: prompts in, `motions.npz` out (the `generate` verb of the method contract).

A prompt file is a JSON list (or JSON Lines) of objects `{"id", "text", "length", "repeats", "seed"}`;
`length` (frames) may be null or absent, then the model's length estimator draws one per prompt, shared by
its repeats (as MoMask's gen_t2m.py does). The output maps `"<id>/<repeat>"` to a float32 (frames, 263)
array of de-normalised features.

    loaded = load_model("models/base", device="cpu")
    encoder = text_encoder_for(loaded.card, device="cpu")
    motions = generate_motions(loaded.backbone, encoder, read_prompts("prompts.json"), GenerationSettings())
    write_motions("motions.npz", motions)

Lengths: a prompt of F frames gets ceil(F / 4) tokens; the decoded 4·ceil(F / 4) frames are cropped to F.
For F a multiple of 4 this is exactly MoMask; otherwise MoMask's floor would return fewer frames than asked.

Reproducibility: every (prompt, repeat) draws from its own `torch.Generator`, seeded from the prompt's seed
and the repeat index, and is decoded at its own length, so the same prompts and settings always give the
same motions. Across batch sizes only the float rounding of batched, padded matrix products differs (about
1e-6); it can reorder near-tied confidences when tokens are re-masked and so change a motion. `batch_size`
is therefore a generation setting like any other. Motions also depend on the device (CPU and CUDA random
streams differ). Batching is worth it: about 2x the throughput of one motion per call on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from benchmark.backbone.model import Backbone, ModelCard, resolve_device
from benchmark.backbone.transformers import LogitsProcessor
from benchmark.errors import ConfigError, DataFormatError, HMUError
from benchmark.text.base import TextEncoder, check_identity
from benchmark.text.encoders import build_text_encoder

PROMPT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
"""Prompt ids: no slash, since a motion's key is `<id>/<repeat>`."""
PROMPT_KEYS = ("id", "text", "length", "repeats", "seed")


class GenerationError(HMUError):
    """Generation cannot run as asked: bad settings, a prompt too long, no length and no estimator."""


# ----------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class Prompt:
    """One text to turn into `repeats` motions."""

    id: str
    """Unique within a prompt file; letters, digits and `_ . : -` (no slash)."""
    text: str
    """The caption given to the text encoder."""
    length: int | None = None
    """Frames to generate; None: drawn by the model's length estimator (an error if it has none)."""
    repeats: int = 1
    """Motions to draw for this text (keys `<id>/0` ... `<id>/<repeats-1>`)."""
    seed: int = 0
    """Seeds the random draws of every repeat (with the repeat index) and of the length."""

    def keys(self) -> list[str]:
        return [motion_key(self.id, repeat) for repeat in range(self.repeats)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def motion_key(prompt_id: str, repeat: int) -> str:
    """The key of a motion in `motions.npz`."""
    return f"{prompt_id}/{repeat}"


def _int_field(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def prompt_from_dict(data: Any, path: str | Path, index: int) -> Prompt:
    """A Prompt from one parsed entry; a bad entry is a ConfigError naming `path`, the index and the field."""
    where = f"[{index}]"
    if not isinstance(data, Mapping):
        raise ConfigError(path, where, f"expected an object, got {type(data).__name__}")
    unknown = sorted(key for key in data if key not in PROMPT_KEYS)
    if unknown:
        raise ConfigError(path, f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(PROMPT_KEYS)})")
    for key in ("id", "text"):
        if key not in data:
            raise ConfigError(path, f"{where}.{key}", "missing")
    if not isinstance(data["id"], str) or not PROMPT_ID.match(data["id"]):
        raise ConfigError(
            path, f"{where}.id", f"expected a string matching {PROMPT_ID.pattern}, got {data['id']!r}"
        )
    if not isinstance(data["text"], str) or not data["text"].strip():
        raise ConfigError(path, f"{where}.text", "expected a non-empty string")
    length = data.get("length")
    if length is not None and not _int_field(length, 1):
        raise ConfigError(
            path, f"{where}.length", f"expected a positive number of frames or null, got {length!r}"
        )
    repeats = data.get("repeats", 1)
    if not _int_field(repeats, 1):
        raise ConfigError(path, f"{where}.repeats", f"expected an integer >= 1, got {repeats!r}")
    seed = data.get("seed", 0)
    if not _int_field(seed, 0):
        raise ConfigError(path, f"{where}.seed", f"expected an integer >= 0, got {seed!r}")
    return Prompt(data["id"], data["text"], length, repeats, seed)


def read_prompts(path: str | Path) -> list[Prompt]:
    """Prompts from a JSON list or a JSON Lines file (one object per non-blank line); ids must be unique."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, None, f"cannot read the prompt file: {error}") from error
    entries: list[Any]
    if text.lstrip().startswith("["):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(path, None, f"not valid JSON: {error}") from error
    else:
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ConfigError(path, f"line {number}", f"not valid JSON: {error}") from error
    if not entries:
        raise ConfigError(path, None, "no prompts")
    prompts = [prompt_from_dict(entry, path, index) for index, entry in enumerate(entries)]
    seen: set[str] = set()
    for index, prompt in enumerate(prompts):
        if prompt.id in seen:
            raise ConfigError(path, f"[{index}].id", f"duplicate prompt id {prompt.id!r}")
        seen.add(prompt.id)
    return prompts


def write_prompts(path: str | Path, prompts: Sequence[Prompt]) -> None:
    """Write prompts as a JSON list that `read_prompts` reads back."""
    Path(path).write_text(json.dumps([p.to_dict() for p in prompts], indent=1) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling options; the defaults are MoMask's HumanML3D evaluation settings."""

    timesteps: int = 10
    """Decoding iterations of the masked transformer (README eval: 10; the option default is 18)."""
    cond_scale: float = 4.0
    """Classifier-free guidance scale of the masked transformer (KIT: 2)."""
    residual_cond_scale: float = 5.0
    """Guidance scale of the residual transformer (MoMask's eval and gen scripts use 5)."""
    temperature: float = 1.0
    """Sampling temperature of both transformers."""
    topk_filter_thres: float = 0.9
    """Keep the top ceil((1 - thres) · codes) logits per position (52 of 512 at 0.9)."""
    gumbel: bool = False
    """Gumbel-argmax instead of categorical sampling in the masked transformer (MoMask's `gsample`)."""
    batch_size: int = 32
    """Motions decoded together; changes speed and memory, never the motions."""

    def __post_init__(self) -> None:
        if self.timesteps < 1:
            raise GenerationError(f"timesteps must be >= 1, got {self.timesteps}")
        if self.temperature <= 0:
            raise GenerationError(f"temperature must be > 0, got {self.temperature}")
        if not 0 <= self.topk_filter_thres < 1:
            raise GenerationError(f"topk_filter_thres must be in [0, 1), got {self.topk_filter_thres}")
        if self.batch_size < 1:
            raise GenerationError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("cond_scale", "residual_cond_scale"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise GenerationError(f"{name} must be finite, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- text encoder


def text_encoder_for(
    card: ModelCard, device: str | torch.device = "cpu", *, clip_weights: str | Path | None = None
) -> TextEncoder:
    """The text encoder the model folder records, checked against the recorded identity.

    CLIP needs its weights file (`clip_weights`, else $HMU_CLIP_WEIGHTS or OpenAI's cache path); a CLIP
    identity recorded with a random seed (tests) is rebuilt from that seed. Another encoder than the one the
    model was trained with, or other weights, is a TextEncoderError.
    """
    identity = card.text_encoder
    name = identity["encoder"]
    options: dict[str, Any] = {"device": resolve_device(device)}
    if name == "clip-vit-b32":
        if identity.get("random_seed") is not None:
            if clip_weights is not None:
                raise GenerationError(
                    "this model was made with random CLIP weights; do not pass a weights file"
                )
            options.update(random_weights=True, seed=identity["random_seed"])
        else:
            options["weights"] = clip_weights
    elif clip_weights is not None:
        raise GenerationError(f"a CLIP weights file was given, but the model's text encoder is {name!r}")
    encoder = build_text_encoder(name, **options)
    check_identity(identity, encoder)
    return encoder


# ----------------------------------------------------------------------------- generation


def sample_seed(seed: int, *labels: int | str) -> int:
    """A 63-bit generator seed from a prompt seed and labels (the repeat index, or "length"): equal inputs
    give equal seeds on every machine, and nearby seeds give unrelated streams."""
    text = "/".join(str(part) for part in (seed, *labels))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@dataclass(frozen=True)
class _Sample:
    key: str
    text_index: int
    tokens: int
    frames: int
    seed: int


@contextmanager
def _evaluating(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout in the decoder or the estimator) for the duration, then the caller's mode."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _plan(
    backbone: Backbone, prompts: Sequence[Prompt], text_index: Mapping[str, int], cond: Tensor
) -> list[_Sample]:
    """Every (prompt, repeat) with its token count: given lengths rounded up to whole tokens, missing ones
    drawn from the length estimator (one draw per prompt, at least one token)."""
    cfg = backbone.config
    per_token = backbone.frames_per_token
    max_tokens = min(cfg.mask.max_len, cfg.residual.max_len)
    device = cond.device
    samples: list[_Sample] = []
    for prompt in prompts:
        index = text_index[prompt.text]
        if prompt.length is None:
            if backbone.length_estimator is None:
                raise GenerationError(
                    f"prompt {prompt.id!r} has no length and the model has no length estimator; give a length"
                )
            drawn = backbone.length_estimator.sample(
                cond[index : index + 1], generator=_generator(device, sample_seed(prompt.seed, "length"))
            )
            tokens = min(max(int(drawn[0]), 1), max_tokens)
            frames = tokens * per_token
        else:
            frames = prompt.length
            tokens = math.ceil(frames / per_token)
            if tokens > max_tokens:
                raise GenerationError(
                    f"prompt {prompt.id!r}: {frames} frames need {tokens} tokens, the model takes at most "
                    f"{max_tokens} ({max_tokens * per_token} frames)"
                )
        for repeat in range(prompt.repeats):
            samples.append(
                _Sample(
                    motion_key(prompt.id, repeat), index, tokens, frames, sample_seed(prompt.seed, repeat)
                )
            )
    return samples


def _sample_codes(
    backbone: Backbone,
    cond: Tensor,
    tokens: list[int],
    generators: list[torch.Generator],
    settings: GenerationSettings,
    logits_processor: LogitsProcessor | None,
) -> Tensor:
    """Codes (B, max tokens, Q) of a batch, -1 beyond each length: masked transformer (base layer), then
    residual transformer. Sample b draws only from `generators[b]`, so its random draws do not depend on
    the batch; only the float rounding of batched matrix products does (see the module docstring)."""
    base = backbone.mask_transformer.generate(
        cond,
        tokens,
        timesteps=settings.timesteps,
        cond_scale=settings.cond_scale,
        temperature=settings.temperature,
        topk_filter_thres=settings.topk_filter_thres,
        gumbel=settings.gumbel,
        generator=generators,
        logits_processor=logits_processor,
    )
    return backbone.residual_transformer.generate(
        base,
        cond,
        tokens,
        cond_scale=settings.residual_cond_scale,
        temperature=settings.temperature,
        topk_filter_thres=settings.topk_filter_thres,
        generator=generators,
        logits_processor=logits_processor,
    )


@torch.no_grad()
def generate_motions(
    backbone: Backbone,
    encoder: TextEncoder,
    prompts: Sequence[Prompt],
    settings: GenerationSettings = GenerationSettings(),  # noqa: B008 (frozen, so sharing the default is safe)
    *,
    logits_processor: LogitsProcessor | None = None,
) -> dict[str, np.ndarray]:
    """Motions for every prompt and repeat: `"<id>/<repeat>"` -> float32 (frames, feature_dim), de-normalised.

    Runs on the backbone's device, in eval mode (the caller's mode is restored). `logits_processor` is passed
    to both transformers (sampling-time unlearning methods). Keys come in prompt order, then repeat order.
    """
    if not prompts:
        return {}
    ids = [prompt.id for prompt in prompts]
    if len(set(ids)) != len(ids):
        raise GenerationError("prompt ids must be unique")
    device = backbone.mean.device
    cond_dim = backbone.config.mask.cond_dim
    if encoder.dim != cond_dim:
        raise GenerationError(
            f"the text encoder gives {encoder.dim}-d features, the model takes {cond_dim}-d"
        )
    # Each distinct text is encoded once, in one call, whatever the batch size.
    texts = list(dict.fromkeys(prompt.text for prompt in prompts))
    text_index = {text: index for index, text in enumerate(texts)}
    with _evaluating(backbone):
        cond = encoder.encode(texts).to(device=device, dtype=torch.float32)
        samples = _plan(backbone, prompts, text_index, cond)
        motions: dict[str, np.ndarray] = {}
        # Longest first, so that batches hold similar lengths; the order never changes a motion.
        ordered = sorted(samples, key=lambda sample: -sample.tokens)
        for start in range(0, len(ordered), settings.batch_size):
            batch = ordered[start : start + settings.batch_size]
            codes = _sample_codes(
                backbone,
                cond[[s.text_index for s in batch]],
                [s.tokens for s in batch],
                [_generator(device, s.seed) for s in batch],
                settings,
                logits_processor,
            )
            # Decode each length on its own: padding would change the convolutions near a motion's end.
            for tokens in sorted({s.tokens for s in batch}):
                group = [i for i, s in enumerate(batch) if s.tokens == tokens]
                decoded = backbone.denormalise(backbone.rvq.decode(codes[group, :tokens]))
                for row, i in enumerate(group):
                    motions[batch[i].key] = decoded[row, : batch[i].frames].float().cpu().numpy()
    return {sample.key: motions[sample.key] for sample in samples}


# ----------------------------------------------------------------------------- motions.npz


def check_motion(path: str | Path, key: str, array: np.ndarray, feature_dim: int) -> None:
    """Raise DataFormatError unless `array` is a finite float32 (frames >= 1, feature_dim) motion."""
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        raise DataFormatError(path, f"{key}: expected float32, got {getattr(array, 'dtype', type(array))}")
    if array.ndim != 2 or array.shape[1] != feature_dim or array.shape[0] < 1:
        raise DataFormatError(path, f"{key}: expected shape (frames >= 1, {feature_dim}), got {array.shape}")
    if not np.isfinite(array).all():
        raise DataFormatError(path, f"{key}: holds NaN or infinite values")


def _check_key(path: str | Path, key: str) -> None:
    prompt_id, _, repeat = key.rpartition("/")
    if not PROMPT_ID.match(prompt_id) or not repeat.isdigit():
        raise DataFormatError(path, f"key {key!r} is not '<prompt id>/<repeat>'")


def write_motions(path: str | Path, motions: Mapping[str, np.ndarray], *, feature_dim: int = 263) -> None:
    """Validate and write `motions.npz` (uncompressed), through a temporary file renamed into place."""
    path = Path(path)
    for key, array in motions.items():
        _check_key(path, key)
        check_motion(path, key, array, feature_dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **motions)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def read_motions(
    path: str | Path, *, feature_dim: int = 263, prompts: Sequence[Prompt] | None = None
) -> dict[str, np.ndarray]:
    """Read and validate `motions.npz`. With `prompts`, the keys must be exactly their `<id>/<repeat>` keys
    and each motion with a given length must have that many frames."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            motions = {key: archive[key] for key in archive.files}
    except FileNotFoundError as error:
        raise DataFormatError(path, "missing") from error
    except (ValueError, OSError, EOFError) as error:
        raise DataFormatError(path, f"not a readable .npz file: {error}") from error
    for key, array in motions.items():
        _check_key(path, key)
        check_motion(path, key, array, feature_dim)
    if prompts is not None:
        expected = [key for prompt in prompts for key in prompt.keys()]
        missing = [key for key in expected if key not in motions]
        extra = sorted(set(motions) - set(expected))
        if missing or extra:
            raise DataFormatError(path, f"missing motions {missing[:5]}, unexpected motions {extra[:5]}")
        for prompt in prompts:
            for key in prompt.keys():
                if prompt.length is not None and len(motions[key]) != prompt.length:
                    raise DataFormatError(
                        path, f"{key}: {len(motions[key])} frames, asked for {prompt.length}"
                    )
    return motions
