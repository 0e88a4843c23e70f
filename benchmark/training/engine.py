"""The training loop shared by the four parts: optimiser, schedule, mixed precision, progress bar and
resumable checkpoints.

A part supplies its model, dataset and two functions: `prepare(batch)` (move to the device, look up text
features, encode RVQ codes; runs outside autocast, without gradients) and `objective(inputs)` (the loss and
the numbers to show, run under autocast). `run_loop` does the rest.

    result = run_loop("rvq", model, dataset, prepare, objective, settings,
                      checkpoint=work / "rvq" / "latest.pt", fingerprint={"data": ...})
    result.losses        # one training loss per step, the whole trajectory (resumed runs included)

Resuming. `latest.pt` holds the model (all buffers, including the RVQ's EMA statistics), the optimiser, the
loss scaler, the step, the epoch and position within it, the RNG states, the recipe and a fingerprint of the
data and frozen inputs. The data order is a pure function of (seed, epoch) and each item of (seed, epoch,
index), so a run restarted from `latest.pt` on the CPU reproduces the uninterrupted run bit for bit (same
torch build and thread count). On CUDA it continues the same trajectory up to GPU non-determinism.
A restart under another recipe, data or model configuration is refused; `steps` may grow (train longer).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from benchmark.backbone.model import resolve_device
from benchmark.backbone.rvq import QuantizeEMAReset
from benchmark.errors import HMUError
from benchmark.training.settings import TrainSettings, learning_rate

logger = logging.getLogger(__name__)

STATE_FORMAT = "hmu-train-state/1"

Prepare = Callable[[Any], Any]
"""A collated batch -> the objective's inputs, on the training device."""
Objective = Callable[[Any], tuple[Tensor, dict[str, Tensor]]]
"""Inputs -> (scalar loss to minimise, {name: scalar} shown on the progress bar, e.g. accuracy)."""
StepHook = Callable[[int, int, float], None]
"""Called after every optimiser step with (steps done in this call, steps still to do, seconds since
this call began training); it may raise to stop the run (the time budget of `benchmark.unlearning`)."""


class TrainingError(HMUError):
    """Training cannot start or resume: a bad checkpoint, a mismatch with it, or too little data."""


@dataclass(frozen=True)
class LoopResult:
    steps: int
    """Optimiser steps done in all (including those before a resume)."""
    resumed_from: int
    """Step the run restarted from (0 for a fresh start)."""
    losses: tuple[float, ...]
    """Training loss of every step, from step 0."""
    last_logs: dict[str, float]
    """Running means of the loss and the objective's other numbers over the last `log_every` steps."""
    seconds: float
    """Wall time of this call's steps (excluding checkpoint loading)."""
    seconds_per_step: float
    """Mean wall time of one step in this call (NaN when no step ran)."""


def autocast_dtype() -> torch.dtype:
    """bfloat16 on a GPU that has it (no loss scaling needed), else float16."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(settings: TrainSettings, device: torch.device) -> AbstractContextManager[Any]:
    """Mixed precision on CUDA when `settings.amp`; a no-op context elsewhere (CPU trains in float32)."""
    enabled = settings.amp and device.type == "cuda"
    dtype = autocast_dtype() if enabled else torch.float32
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


def epoch_batches(size: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a permutation drawn from (seed, epoch) cut into `batch_size` chunks; the
    last partial chunk is dropped (MoMask's drop_last) unless it is the only one."""
    order = np.random.default_rng([seed, epoch]).permutation(size).tolist()
    batches = [order[i : i + batch_size] for i in range(0, size, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def total_steps(settings: TrainSettings, dataset_size: int) -> int:
    if settings.steps is not None:
        return settings.steps
    assert settings.epochs is not None  # TrainSettings guarantees one of the two
    return settings.epochs * len(epoch_batches(dataset_size, settings.batch_size, settings.seed, 0))


# ----------------------------------------------------------------------------- checkpoint state


def _ema_flags(model: nn.Module) -> dict[str, bool]:
    # Whether each RVQ quantizer layer holds data yet: a plain attribute, not in any state dict.
    return {
        name: module.initialized
        for name, module in model.named_modules()
        if isinstance(module, QuantizeEMAReset)
    }


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _write_atomically(content: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(content, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def read_state(path: Path) -> dict[str, Any]:
    """A `latest.pt`, read on the CPU with `weights_only=True`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged zip raises many types; all mean "unreadable"
        raise TrainingError(
            f"{path}: cannot read the training state: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainingError(f"{path}: not a training state written by this code (format {STATE_FORMAT})")
    return state


def _check_resumable(
    path: Path, state: Mapping[str, Any], part: str, recipe: dict, fingerprint: dict
) -> None:
    if state.get("part") != part:
        raise TrainingError(f"{path}: holds the state of part {state.get('part')!r}, not {part!r}")
    for what, saved, current in (
        ("recipe", state["recipe"], recipe),
        ("fingerprint", state["fingerprint"], fingerprint),
    ):
        changed = sorted(key for key in set(saved) | set(current) if saved.get(key) != current.get(key))
        if changed:
            details = "; ".join(
                f"{key}: saved {saved.get(key)!r}, now {current.get(key)!r}" for key in changed
            )
            raise TrainingError(
                f"{path}: cannot resume, the {what} differs ({details}); use another work folder to restart"
            )


# ----------------------------------------------------------------------------- the loop


def run_loop(
    part: str,
    model: nn.Module,
    dataset: Dataset[Any],
    prepare: Prepare,
    objective: Objective,
    settings: TrainSettings,
    *,
    checkpoint: Path | None,
    fingerprint: Mapping[str, Any],
    collate_fn: Callable[[list[Any]], Any] | None = None,
    step_hook: StepHook | None = None,
) -> LoopResult:
    """Train `model` (already on the device, fresh or loaded) for `settings`, resuming from `checkpoint` when
    that file exists and writing it every `checkpoint_every` steps and at the end. The model is left in
    train mode; the caller switches it to eval. `step_hook` is called after every step."""
    device = resolve_device(settings.device)
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise TrainingError(f"{part}: the training split yields no items (too few or too short motions)")
    steps = total_steps(settings, size)
    recipe = settings.recipe()
    fingerprint = dict(fingerprint)

    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        parameters, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
    )
    use_amp = settings.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and autocast_dtype() == torch.float16)

    step = epoch = batch_in_epoch = 0
    losses: list[float] = []
    last_logs: dict[str, float] = {}
    if checkpoint is not None and checkpoint.is_file():
        state = read_state(checkpoint)
        _check_resumable(checkpoint, state, part, recipe, fingerprint)
        model.load_state_dict(state["model"])
        # After the state dict: it restores buffers left out of it (the RVQ's EMA statistics) and undoes what
        # loading a codebook does to them.
        buffers = dict(model.named_buffers())
        for name, value in state["buffers"].items():
            buffers[name].copy_(value)
        for name, module in model.named_modules():
            if isinstance(module, QuantizeEMAReset):
                module.initialized = bool(state["ema_initialized"][name])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], device)
        step, epoch, batch_in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
        losses = [float(x) for x in state["losses"]]
        last_logs = {str(name): float(value) for name, value in state["last_logs"].items()}
        logger.info("%s: resuming from %s at step %d of %d", part, checkpoint, step, steps)
    else:
        torch.manual_seed(settings.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(settings.seed)
    resumed_from = step

    def save() -> None:
        if checkpoint is None:
            return
        content = {
            "format": STATE_FORMAT,
            "part": part,
            "model": model.state_dict(),
            "buffers": {name: value.detach().clone() for name, value in model.named_buffers()},
            "ema_initialized": _ema_flags(model),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": _rng_state(device),
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "losses": list(losses),
            "last_logs": dict(last_logs),
            "recipe": recipe,
            "fingerprint": fingerprint,
            "settings": settings.to_dict(),
        }
        _write_atomically(content, checkpoint)

    model.train()
    running: dict[str, list[Tensor]] = {}
    pending: list[Tensor] = []  # losses not yet read back: one GPU sync per log, not per step

    def flush() -> None:
        nonlocal last_logs
        if pending:
            values = torch.stack(pending).float().tolist()
            pending.clear()
            bad = [i for i, value in enumerate(values) if not math.isfinite(value)]
            if bad:
                first = step - len(values) + bad[0]
                raise TrainingError(f"{part}: the loss is {values[bad[0]]} at step {first}; try a lower lr")
            losses.extend(values)
        if running:
            last_logs = {name: float(torch.stack(values).mean()) for name, values in running.items()}
            running.clear()

    started = time.perf_counter()
    bar = tqdm(
        total=steps, initial=step, desc=part, unit="step", disable=not settings.progress, dynamic_ncols=True
    )
    try:
        while step < steps:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            batches = epoch_batches(size, settings.batch_size, settings.seed, epoch)
            # A seeded generator: otherwise creating the loader draws from the global RNG, and a resumed
            # run (which creates one mid-epoch) would diverge from an uninterrupted one.
            loader = DataLoader(
                dataset,
                batch_sampler=batches[batch_in_epoch:],
                num_workers=settings.num_workers,
                collate_fn=collate_fn,
                generator=torch.Generator().manual_seed(settings.seed + epoch),
            )
            for batch in loader:
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(settings, step)
                with torch.no_grad():
                    inputs = prepare(batch)
                with autocast(settings, device):
                    loss, logs = objective(inputs)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if settings.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(parameters, settings.grad_clip)
                scaler.step(optimizer)
                scaler.update()

                step += 1
                batch_in_epoch += 1
                pending.append(loss.detach())
                for name, value in {"loss": loss, **logs}.items():
                    running.setdefault(name, []).append(value.detach().float())
                bar.update(1)
                if step % settings.log_every == 0 or step == steps:
                    flush()
                    bar.set_postfix(
                        {name: f"{value:.4g}" for name, value in last_logs.items()}, refresh=False
                    )
                if step % settings.checkpoint_every == 0 or step == steps:
                    flush()
                    save()
                if step_hook is not None:
                    step_hook(step - resumed_from, steps - step, time.perf_counter() - started)
                if step == steps:
                    break
            else:
                epoch += 1
                batch_in_epoch = 0
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    done = step - resumed_from
    return LoopResult(
        steps=step,
        resumed_from=resumed_from,
        losses=tuple(losses),
        last_logs=last_logs,
        seconds=seconds,
        seconds_per_step=seconds / done if done else math.nan,
    )
