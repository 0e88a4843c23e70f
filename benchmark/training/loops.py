"""Train each backbone part: `train_rvq`, `train_mask_transformer`, `train_residual_transformer`,
`train_length_estimator`. Each takes the data (`MotionData`), the part to train (a module to continue from,
or its config to start afresh), the settings and a work folder, and returns a `TrainResult` with the
trained module and its metrics on the validation split.

    data = MotionData.open("data/embedded")
    cfg = BackboneConfig.small()
    texts = TextFeatureCache(build_text_encoder("minilm"))
    rvq = train_rvq(data, cfg.rvq, TrainSettings.small("rvq"), work_dir="work").model
    mask = train_mask_transformer(data, cfg.mask, rvq, texts, TrainSettings.small("mask"), work_dir="work")
    mask.metrics["mask_val_accuracy"]

With a work folder, each part keeps `<work>/<part>/latest.pt` and a second call with the same folder resumes
from it (a finished part only re-evaluates); see `benchmark.training.engine` for what is guaranteed. A
`step_hook` is called after every step (`engine.StepHook`). `train_part` trains any part of a backbone by
name and `part_record` is what a model folder records of it (`hmu train`, and the `retrain` method).

The transformers train on the codes of the frozen RVQ, encoded on the fly from each batch's motion crops as
MoMask does (crops start at any frame, so codes cannot be computed once per motion); the RVQ runs without
gradients and outside autocast, so the codes are those of float32 inference.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from benchmark.backbone.config import (
    LengthEstimatorConfig,
    MaskTransformerConfig,
    ResidualTransformerConfig,
    RVQConfig,
)
from benchmark.backbone.length_estimator import LengthEstimator
from benchmark.backbone.model import Backbone, resolve_device
from benchmark.backbone.rvq import ResidualVQVAE, reconstruction_loss
from benchmark.backbone.transformers import MaskTransformer, ResidualTransformer
from benchmark.data.torch_datasets import (
    EvaluationBatch,
    EvaluationMotionDataset,
    MotionWindowDataset,
    TrainingMotionDataset,
    collate_evaluation,
)
from benchmark.motion.features import joints_from_features
from benchmark.training.data import MotionData, TextFeatureCache
from benchmark.training.engine import LoopResult, StepHook, TrainingError, run_loop
from benchmark.training.settings import TrainSettings

logger = logging.getLogger(__name__)

EVAL_SEED = 1234
"""Seed of the masking draws of the validation metrics (fixed, so they compare across runs)."""
EVAL_BATCH = 64


@dataclass(frozen=True)
class TrainResult:
    """One part after training."""

    part: str
    """rvq, mask, residual or length."""
    model: nn.Module
    """The trained module, on the training device, in eval mode."""
    steps: int
    """Optimiser steps done in all."""
    resumed_from: int
    """Step this call restarted from (0 for a fresh start)."""
    losses: tuple[float, ...]
    """Training loss of every step."""
    metrics: dict[str, float]
    """Final training loss (mean of the last log window) and the validation metrics (NaN without val ids)."""
    seconds: float
    """Wall time of this call: training, evaluation and data preparation."""
    seconds_per_step: float
    """Mean wall time of one training step in this call."""


def state_digest(module: nn.Module) -> str:
    """sha256 of a module's state dict (names, shapes and float32 bytes): identifies a frozen input."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(data.shape)}|".encode())
        digest.update(data.float().numpy().tobytes())
    return digest.hexdigest()


@contextmanager
def _evaluating(*modules: nn.Module) -> Iterator[None]:
    """Eval mode and a fixed, isolated RNG: the metrics are reproducible and leave training's RNG alone."""
    modes = [module.training for module in modules]
    devices = [d for d in {p.device for m in modules for p in m.parameters()} if d.type == "cuda"]
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(EVAL_SEED)
        for module in modules:
            module.eval()
        try:
            yield
        finally:
            for module, mode in zip(modules, modes, strict=True):
                module.train(mode)


def _checkpoint(work_dir: str | Path | None, part: str) -> Path | None:
    return None if work_dir is None else Path(work_dir) / part / "latest.pt"


def _result(
    part: str, model: nn.Module, loop: LoopResult, metrics: dict[str, float], started: float
) -> TrainResult:
    model.eval()
    final = {f"{part}_train_loss": loop.last_logs.get("loss", math.nan), **metrics}
    return TrainResult(
        part=part,
        model=model,
        steps=loop.steps,
        resumed_from=loop.resumed_from,
        losses=loop.losses,
        metrics=final,
        seconds=time.perf_counter() - started,
        seconds_per_step=loop.seconds_per_step,
    )


def _start(model: Any, config_type: type, build: type, settings: TrainSettings) -> nn.Module:
    """The module to train on the settings' device: `model` itself, or a fresh one from a config, initialised
    under the settings' seed."""
    device = resolve_device(settings.device)
    if isinstance(model, config_type):
        torch.manual_seed(settings.seed)
        model = build(model)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"expected a {build.__name__} or a {config_type.__name__}, got {type(model).__name__}"
        )
    return model.to(device)


def _check_settings(settings: TrainSettings, part: str) -> None:
    if settings.part != part:
        raise TrainingError(f"settings for part {settings.part!r} given to the {part} trainer")


# ----------------------------------------------------------------------------- RVQ


def train_rvq(
    data: MotionData,
    model: ResidualVQVAE | RVQConfig,
    settings: TrainSettings,
    work_dir: str | Path | None = None,
    step_hook: StepHook | None = None,
) -> TrainResult:
    """Train the motion tokenizer on every `window_size`-frame window of the training motions (MoMask's
    loss: SmoothL1 + position term + commitment; EMA codebooks). Metrics on the val motions: mean L1 in the
    normalised space and mean joint position error in metres (global, and relative to the root)."""
    _check_settings(settings, "rvq")
    started = time.perf_counter()
    rvq = cast(ResidualVQVAE, _start(model, RVQConfig, ResidualVQVAE, settings))
    device = next(rvq.parameters()).device
    windows = MotionWindowDataset(
        data.folder, data.train_ids, data.mean, data.std, window_size=settings.window_size
    )

    def prepare(batch: Tensor) -> Tensor:
        return batch.to(device, non_blocking=True).float()

    def objective(motion: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        recon, commit, perplexity = rvq(motion)
        return reconstruction_loss(recon, motion, commit, rvq.cfg), {"perplexity": perplexity}

    fingerprint = {**data.fingerprint(), "config": rvq.cfg.to_dict()}
    loop = run_loop(
        "rvq",
        rvq,
        windows,
        prepare,
        objective,
        settings,
        checkpoint=_checkpoint(work_dir, "rvq"),
        fingerprint=fingerprint,
        step_hook=step_hook,
    )
    return _result("rvq", rvq, loop, evaluate_rvq(rvq, data), started)


def evaluate_rvq(rvq: ResidualVQVAE, data: MotionData) -> dict[str, float]:
    """Reconstruction of each val motion (cut to a multiple of the token length) through encode/decode:
    mean absolute error in the normalised space, and mean per-joint position error in metres after
    de-normalising and recovering the joints, both of the global positions (root path included, so drift
    counts) and relative to the root joint."""
    names = ("rvq_val_l1", "rvq_val_joint_error_m", "rvq_val_local_joint_error_m")
    if not data.val_ids:
        return dict.fromkeys(names, math.nan)
    device = next(rvq.parameters()).device
    mean = torch.as_tensor(data.mean, device=device)
    std = torch.as_tensor(data.std, device=device)
    unit = rvq.cfg.frames_per_token
    l1_sum = joint_sum = local_sum = 0.0
    frames = 0
    with _evaluating(rvq):
        for motion_id in data.val_ids:
            features = torch.as_tensor(data.folder.features(motion_id), device=device)
            length = len(features) // unit * unit
            if length == 0:
                continue
            target = (features[:length] - mean) / std
            recon = rvq.decode(rvq.encode(target[None]))[0]
            l1_sum += float((recon - target).abs().mean(-1).sum())
            joints = joints_from_features((recon * std + mean).double())
            truth = joints_from_features(features[:length].double())
            joint_sum += float((joints - truth).norm(dim=-1).mean(-1).sum())
            local = (joints - joints[:, :1]) - (truth - truth[:, :1])
            local_sum += float(local.norm(dim=-1)[:, 1:].mean(-1).sum())
            frames += length
    if frames == 0:
        return dict.fromkeys(names, math.nan)
    return dict(zip(names, (l1_sum / frames, joint_sum / frames, local_sum / frames), strict=True))


# ----------------------------------------------------------------------------- transformers: shared data


def training_items(
    data: MotionData, settings: TrainSettings, unit: int, seed: int | None = None
) -> TrainingMotionDataset:
    """MoMask's training draws (caption, crop, length) of `data`, as the transformers are trained; `seed`
    defaults to the settings' seed."""
    return TrainingMotionDataset(
        data.folder,
        data.train_ids,
        data.mean,
        data.std,
        max_motion_length=settings.max_motion_length,
        unit_length=unit,
        seed=settings.seed if seed is None else seed,
    )


def _val_loader(data: MotionData, max_motion_length: int, unit: int) -> DataLoader[Any] | None:
    if not data.val_ids:
        return None
    items = EvaluationMotionDataset(
        data.folder, data.val_ids, data.mean, data.std, max_motion_length=max_motion_length, unit_length=unit
    )
    if len(items) == 0:
        return None
    return DataLoader(items, batch_size=EVAL_BATCH, collate_fn=collate_evaluation)


def _check_texts(texts: TextFeatureCache, cond_dim: int, part: str) -> None:
    if texts.dim != cond_dim:
        raise TrainingError(
            f"{part}: the text encoder {texts.identity.get('encoder')!r} gives {texts.dim}-d features, "
            f"the model expects cond_dim {cond_dim}"
        )


def _frozen(rvq: ResidualVQVAE, device: torch.device) -> ResidualVQVAE:
    # Eval mode: argmin codes, no EMA update, no dropout. No gradient flows into it: `prepare` runs under
    # no_grad (and `encode` is no_grad itself).
    return rvq.to(device).eval()


# ----------------------------------------------------------------------------- masked transformer


def train_mask_transformer(
    data: MotionData,
    model: MaskTransformer | MaskTransformerConfig,
    rvq: ResidualVQVAE,
    texts: TextFeatureCache,
    settings: TrainSettings,
    work_dir: str | Path | None = None,
    step_hook: StepHook | None = None,
) -> TrainResult:
    """Train the masked transformer on the base-layer codes of the frozen `rvq` (MoMask's objective: cosine
    mask ratio, BERT corruption, condition dropout). Metrics: cross-entropy and token accuracy at the masked
    positions of the val items (training corruption, fixed seed)."""
    _check_settings(settings, "mask")
    started = time.perf_counter()
    mask = cast(MaskTransformer, _start(model, MaskTransformerConfig, MaskTransformer, settings))
    _check_texts(texts, mask.cfg.cond_dim, "mask")
    device = next(mask.parameters()).device
    rvq = _frozen(rvq, device)
    unit = rvq.cfg.frames_per_token
    items = training_items(data, settings, unit)
    texts.precompute(data.captions(data.train_ids), progress=settings.progress)

    def prepare(batch: list[Any]) -> tuple[Tensor, Tensor, Tensor]:
        text, motion, length = batch
        codes = rvq.encode(motion.to(device))
        return codes[..., 0], texts(text).to(device), length.to(device) // unit

    def objective(inputs: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        loss, accuracy = mask(*inputs)
        return loss, {"acc": accuracy}

    fingerprint = {
        **data.fingerprint(),
        "config": mask.cfg.to_dict(),
        "rvq": state_digest(rvq),
        "text_encoder": texts.key(),
    }
    loop = run_loop(
        "mask",
        mask,
        items,
        prepare,
        objective,
        settings,
        checkpoint=_checkpoint(work_dir, "mask"),
        fingerprint=fingerprint,
        step_hook=step_hook,
    )
    return _result("mask", mask, loop, evaluate_mask_transformer(mask, rvq, texts, data, settings), started)


def evaluate_mask_transformer(
    mask: MaskTransformer,
    rvq: ResidualVQVAE,
    texts: TextFeatureCache,
    data: MotionData,
    settings: TrainSettings,
) -> dict[str, float]:
    """Cross-entropy and top-1 accuracy over the masked base-layer tokens of the val items."""
    unit = rvq.cfg.frames_per_token
    loader = _val_loader(data, settings.max_motion_length, unit)
    if loader is None:
        return {"mask_val_loss": math.nan, "mask_val_accuracy": math.nan}
    device = next(mask.parameters()).device
    loss_sum = correct = counted = 0.0
    with _evaluating(mask, rvq):
        batch: EvaluationBatch
        for batch in loader:
            ids = rvq.encode(batch.motions.to(device))[..., 0]
            cond = texts([caption.text for caption in batch.captions]).to(device)
            inputs, labels, padding = mask.corrupt(ids, batch.lengths.to(device) // unit)
            logits = mask.logits(inputs, cond, padding)
            scored = labels != mask.mask_id
            loss_sum += float(F.cross_entropy(logits[scored], labels[scored], reduction="sum"))
            correct += float((logits.argmax(-1) == labels)[scored].sum())
            counted += float(scored.sum())
    if counted == 0:
        return {"mask_val_loss": math.nan, "mask_val_accuracy": math.nan}
    return {"mask_val_loss": loss_sum / counted, "mask_val_accuracy": correct / counted}


# ----------------------------------------------------------------------------- residual transformer


def train_residual_transformer(
    data: MotionData,
    model: ResidualTransformer | ResidualTransformerConfig,
    rvq: ResidualVQVAE,
    texts: TextFeatureCache,
    settings: TrainSettings,
    work_dir: str | Path | None = None,
    step_hook: StepHook | None = None,
) -> TrainResult:
    """Train the residual transformer on all layers' codes of the frozen `rvq` (one layer q per sample, skewed
    toward q=1, as MoMask). Metrics: accuracy of each layer 1..Q-1 on the val items given the true lower
    layers, and their mean."""
    _check_settings(settings, "residual")
    started = time.perf_counter()
    residual = cast(
        ResidualTransformer, _start(model, ResidualTransformerConfig, ResidualTransformer, settings)
    )
    _check_texts(texts, residual.cfg.cond_dim, "residual")
    device = next(residual.parameters()).device
    rvq = _frozen(rvq, device)
    unit = rvq.cfg.frames_per_token
    items = training_items(data, settings, unit)
    texts.precompute(data.captions(data.train_ids), progress=settings.progress)

    def prepare(batch: list[Any]) -> tuple[Tensor, Tensor, Tensor]:
        text, motion, length = batch
        return rvq.encode(motion.to(device)), texts(text).to(device), length.to(device) // unit

    def objective(inputs: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        loss, accuracy = residual(*inputs)
        return loss, {"acc": accuracy}

    fingerprint = {
        **data.fingerprint(),
        "config": residual.cfg.to_dict(),
        "rvq": state_digest(rvq),
        "text_encoder": texts.key(),
    }
    loop = run_loop(
        "residual",
        residual,
        items,
        prepare,
        objective,
        settings,
        checkpoint=_checkpoint(work_dir, "residual"),
        fingerprint=fingerprint,
        step_hook=step_hook,
    )
    metrics = evaluate_residual_transformer(residual, rvq, texts, data, settings)
    return _result("residual", residual, loop, metrics, started)


def evaluate_residual_transformer(
    residual: ResidualTransformer,
    rvq: ResidualVQVAE,
    texts: TextFeatureCache,
    data: MotionData,
    settings: TrainSettings,
) -> dict[str, float]:
    """Top-1 accuracy of each residual layer's codes on the val items (teacher forcing: the true codes of
    the layers below), `residual_val_accuracy_q<q>`, and their mean `residual_val_accuracy`."""
    layers = range(1, residual.cfg.num_quantizers)
    unit = rvq.cfg.frames_per_token
    loader = _val_loader(data, settings.max_motion_length, unit)
    names = [f"residual_val_accuracy_q{q}" for q in layers]
    if loader is None:
        return {"residual_val_accuracy": math.nan, **dict.fromkeys(names, math.nan)}
    device = next(residual.parameters()).device
    correct = dict.fromkeys(layers, 0.0)
    counted = 0.0
    weights = residual.token_embeddings()
    with _evaluating(residual, rvq):
        batch: EvaluationBatch
        for batch in loader:
            codes = rvq.encode(batch.motions.to(device))
            cond = texts([caption.text for caption in batch.captions]).to(device)
            n = codes.shape[1]
            padding = torch.arange(n, device=device)[None, :] >= (batch.lengths.to(device) // unit)[:, None]
            ids = torch.where(padding.unsqueeze(-1), residual.pad_id, codes)
            history = torch.zeros(*ids.shape[:2], residual.cfg.code_dim, device=device)
            for q in layers:
                history = history + F.embedding(ids[..., q - 1], weights[q - 1])
                layer = torch.full((len(ids),), q, dtype=torch.long, device=device)
                logits = residual.logits(history, layer, cond, padding)
                correct[q] += float(((logits.argmax(-1) == ids[..., q]) & ~padding).sum())
            counted += float((~padding).sum())
    if counted == 0:
        return {"residual_val_accuracy": math.nan, **dict.fromkeys(names, math.nan)}
    per_layer = {name: correct[q] / counted for name, q in zip(names, layers, strict=True)}
    return {"residual_val_accuracy": sum(per_layer.values()) / len(per_layer), **per_layer}


# ----------------------------------------------------------------------------- length estimator


def train_length_estimator(
    data: MotionData,
    model: LengthEstimator | LengthEstimatorConfig,
    texts: TextFeatureCache,
    settings: TrainSettings,
    work_dir: str | Path | None = None,
    *,
    frames_per_token: int = 4,
    step_hook: StepHook | None = None,
) -> TrainResult:
    """Train the length estimator: cross-entropy of the text feature's logits against the drawn length in
    tokens (frames // frames_per_token, capped at the last class), as MoMask. Metrics on the val items:
    cross-entropy, top-1 accuracy and the mean absolute error of the most likely length, in tokens."""
    _check_settings(settings, "length")
    started = time.perf_counter()
    estimator = cast(LengthEstimator, _start(model, LengthEstimatorConfig, LengthEstimator, settings))
    _check_texts(texts, estimator.cfg.cond_dim, "length")
    device = next(estimator.parameters()).device
    items = training_items(data, settings, frames_per_token)
    texts.precompute(data.captions(data.train_ids), progress=settings.progress)
    last_class = estimator.cfg.num_classes - 1

    def prepare(batch: list[Any]) -> tuple[Tensor, Tensor]:
        text, _, length = batch
        return texts(text).to(device), (length.to(device) // frames_per_token).clamp(max=last_class)

    def objective(inputs: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cond, target = inputs
        logits = estimator(cond)
        accuracy = (logits.argmax(-1) == target).float().mean()
        return F.cross_entropy(logits, target), {"acc": accuracy}

    fingerprint = {**data.fingerprint(), "config": estimator.cfg.to_dict(), "text_encoder": texts.key()}
    loop = run_loop(
        "length",
        estimator,
        items,
        prepare,
        objective,
        settings,
        checkpoint=_checkpoint(work_dir, "length"),
        fingerprint=fingerprint,
        step_hook=step_hook,
    )
    metrics = evaluate_length_estimator(estimator, texts, data, settings, frames_per_token)
    return _result("length", estimator, loop, metrics, started)


def evaluate_length_estimator(
    estimator: LengthEstimator,
    texts: TextFeatureCache,
    data: MotionData,
    settings: TrainSettings,
    frames_per_token: int = 4,
) -> dict[str, float]:
    names = ("length_val_loss", "length_val_accuracy", "length_val_abs_error_tokens")
    loader = _val_loader(data, settings.max_motion_length, frames_per_token)
    if loader is None:
        return dict.fromkeys(names, math.nan)
    device = next(estimator.parameters()).device
    loss_sum = correct = error = count = 0.0
    with _evaluating(estimator):
        batch: EvaluationBatch
        for batch in loader:
            cond = texts([caption.text for caption in batch.captions]).to(device)
            target = (batch.lengths.to(device) // frames_per_token).clamp(max=estimator.cfg.num_classes - 1)
            logits = estimator(cond)
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            predicted = logits.argmax(-1)
            correct += float((predicted == target).sum())
            error += float((predicted - target).abs().sum())
            count += len(target)
    return dict(zip(names, (loss_sum / count, correct / count, error / count), strict=True))


# ----------------------------------------------------------------------------- a backbone, part by part


def train_part(
    part: str,
    backbone: Backbone,
    data: MotionData,
    texts: TextFeatureCache,
    settings: TrainSettings,
    work_dir: str | Path | None = None,
    step_hook: StepHook | None = None,
) -> TrainResult:
    """Train the part `part` (rvq, mask, residual or length) of `backbone` in place, the transformers on
    the codes of its RVQ. The backbone must have a length estimator to train `length`."""
    if part == "rvq":
        return train_rvq(data, backbone.rvq, settings, work_dir, step_hook)
    if part == "mask":
        return train_mask_transformer(
            data, backbone.mask_transformer, backbone.rvq, texts, settings, work_dir, step_hook
        )
    if part == "residual":
        return train_residual_transformer(
            data, backbone.residual_transformer, backbone.rvq, texts, settings, work_dir, step_hook
        )
    if part == "length":
        if backbone.length_estimator is None:
            raise TrainingError("the backbone has no length estimator to train")
        return train_length_estimator(
            data,
            backbone.length_estimator,
            texts,
            settings,
            work_dir,
            frames_per_token=backbone.frames_per_token,
            step_hook=step_hook,
        )
    raise TrainingError(f"unknown part {part!r}: expected rvq, mask, residual or length")


def data_record(data: MotionData) -> dict[str, Any]:
    """What a model folder records of the data a part was trained on (`part_record`)."""
    return {
        "data": str(data.folder.root.resolve()),
        "data_sha256": data.content_hash(),
        "split": data.split,
        "train_ids": len(data.train_ids),
        "val_split": data.val_split,
    }


def part_record(
    part: str,
    result: TrainResult,
    settings: TrainSettings,
    data_facts: dict[str, Any],
    backbone: Backbone,
    texts: TextFeatureCache,
) -> dict[str, Any]:
    """The provenance of one trained part (`model.json` `provenance.parts.<part name>`): the data
    (`data_record`), the recipe (`TrainSettings.provenance`), the steps and the final metrics (NaN as null),
    the RVQ a transformer learnt the codes of and the text encoder."""
    record: dict[str, Any] = {
        **data_facts,
        "settings": settings.provenance(),
        "steps": result.steps,
        "metrics": {name: value if math.isfinite(value) else None for name, value in result.metrics.items()},
    }
    if part in ("mask", "residual"):
        record["rvq_sha256"] = state_digest(backbone.rvq)
    if part != "rvq":
        record["text_encoder"] = str(texts.identity.get("encoder"))
    return record
