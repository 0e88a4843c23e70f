"""Training settings of one backbone part: optimiser, schedule, batch, length, seed and device.

`TrainSettings.small(part)` trains the small configuration (`BackboneConfig.small()`) on the embedded dataset
within the 10-minute CPU budget (all four parts together); `TrainSettings.published(part)` holds MoMask's
published HumanML3D values. Change a field with `dataclasses.replace`.

    settings = TrainSettings.small("mask")
    settings = dataclasses.replace(settings, steps=200, device="cuda")
    learning_rate(settings, step=10)          # warm-up, then multi-step decay

The learning rate is a pure function of the step (`learning_rate`), so a resumed run needs no scheduler
state: the step alone restores it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmark.errors import ConfigError

Part = Literal["rvq", "mask", "residual", "length"]
PARTS: tuple[Part, ...] = ("rvq", "mask", "residual", "length")
"""The trainable parts, in the order `all` trains them (the transformers need the RVQ's codes)."""

MODEL_PARTS: dict[str, str] = {
    "rvq": "rvq",
    "mask": "mask_transformer",
    "residual": "residual_transformer",
    "length": "length_estimator",
}
"""Training part name -> the part's name in a model folder (`benchmark.backbone.model`)."""


@dataclass(frozen=True)
class TrainSettings:
    """How to train one part. Exactly one of `steps` and `epochs` is set."""

    part: str
    """rvq, mask, residual or length."""
    steps: int | None = None
    """Optimiser steps in all (a resumed run continues up to this count)."""
    epochs: int | None = None
    """Passes over the training items, instead of `steps` (an epoch is len(items) // batch_size steps)."""
    batch_size: int = 64
    """Items per step: 64-frame windows for the RVQ, captioned motions for the others."""
    lr: float = 2e-4
    """Peak learning rate (AdamW)."""
    betas: tuple[float, float] = (0.9, 0.99)
    """AdamW betas; MoMask uses (0.9, 0.99) for the RVQ and the transformers."""
    weight_decay: float = 0.0
    """Decoupled weight decay (1e-5 for MoMask's transformers, 0 for its RVQ)."""
    warmup_steps: int = 0
    """Linear warm-up: the rate is lr·(step+1)/(warmup_steps+1) before step `warmup_steps`."""
    milestones: tuple[int, ...] = ()
    """Steps (counted from 0, warm-up included) at which the rate is multiplied by `gamma`."""
    gamma: float = 0.1
    """Decay factor at each milestone."""
    grad_clip: float | None = None
    """Clip the gradient norm to this value (MoMask clips only the length estimator, at 0.5)."""
    window_size: int = 64
    """RVQ only: frames per training window."""
    max_motion_length: int = 196
    """Transformers and length estimator: frames a training motion is cropped and padded to."""
    seed: int = 3407
    """Seeds the initialisation of a part trained from scratch, the training randomness and the data order."""
    device: str = "cpu"
    """Where to train: cpu, cuda or cuda:N."""
    amp: bool = True
    """Mixed precision (torch.autocast, bfloat16 where the GPU has it, else float16 with loss scaling) when
    the device is CUDA; ignored on the CPU, which trains in float32."""
    log_every: int = 25
    """Steps between updates of the progress bar's running loss and accuracy."""
    checkpoint_every: int = 200
    """Steps between writes of the resumable `latest.pt` (always written at the end too)."""
    num_workers: int = 0
    """DataLoader processes; items do not depend on it. 0 on a small CPU, where workers compete with the
    training for the same cores."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self) -> None:
        where = f"TrainSettings({self.part})"
        if self.part not in PARTS:
            raise ConfigError(where, "part", f"must be one of {list(PARTS)}, got {self.part!r}")
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError(where, "steps", "give exactly one of steps and epochs")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(where, name, f"must be >= 0, got {value}")
        positive = ("batch_size", "window_size", "max_motion_length", "log_every", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(where, name, f"must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(where, "lr", f"must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError(where, "betas", f"must be two numbers in [0, 1), got {self.betas}")
        if self.weight_decay < 0 or self.warmup_steps < 0 or self.num_workers < 0 or self.seed < 0:
            raise ConfigError(
                where, "weight_decay", "weight_decay, warmup_steps, num_workers, seed must be >= 0"
            )
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError(where, "milestones", f"must be increasing, got {self.milestones}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(where, "gamma", f"must be in (0, 1], got {self.gamma}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(where, "grad_clip", f"must be > 0 or None, got {self.grad_clip}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples become lists), for provenance and checkpoints."""
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        data["milestones"] = list(self.milestones)
        return data

    def recipe(self) -> dict[str, Any]:
        """The fields that define the optimisation trajectory: a run may only resume under the same recipe
        (the length, device, logging and workers may change between runs)."""
        data = self.to_dict()
        for name in (
            "steps",
            "epochs",
            "device",
            "amp",
            "log_every",
            "checkpoint_every",
            "num_workers",
            "progress",
        ):
            del data[name]
        return data

    def provenance(self) -> dict[str, Any]:
        """What a model folder records: the recipe, the length and where it ran (not the display options)."""
        data = self.to_dict()
        for name in ("log_every", "checkpoint_every", "num_workers", "progress"):
            del data[name]
        return data

    @classmethod
    def from_provenance(cls, data: Any, path: str | Path, field: str) -> TrainSettings:
        """The settings a model folder recorded (`provenance()`) at `field` of the file `path`, with the
        display options at their defaults. A missing, unknown or ill-typed field is a ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(path, field, f"expected an object, got {type(data).__name__}")
        recorded = set(cls(part="rvq", steps=0).provenance())
        unknown = sorted(set(data) - recorded)
        missing = sorted(recorded - set(data))
        if unknown or missing:
            name = (unknown or missing)[0]
            raise ConfigError(path, f"{field}.{name}", "unknown field" if unknown else "missing")
        try:
            return cls(**dict(data, betas=tuple(data["betas"]), milestones=tuple(data["milestones"])))
        except (TypeError, ConfigError) as error:
            raise ConfigError(path, field, f"not usable training settings: {error}") from None

    @classmethod
    def published(cls, part: str) -> TrainSettings:
        """MoMask's HumanML3D recipe for `part` (see the spec, sections 1.5, 2.4, 2.6 and 2.7)."""
        if part == "rvq":
            # 50 epochs of every 64-frame window at batch 256; MoMask steps its MultiStepLR only after the
            # 2000 warm-up steps, so its milestones 150k/250k are 152k/252k in steps counted from 0.
            return cls(
                part="rvq",
                epochs=50,
                batch_size=256,
                lr=2e-4,
                warmup_steps=2000,
                milestones=(152_000, 252_000),
                gamma=0.05,
                seed=3407,
            )
        if part in ("mask", "residual"):
            return cls(
                part=part,
                epochs=500,
                batch_size=64,
                lr=2e-4,
                weight_decay=1e-5,
                warmup_steps=2000,
                milestones=(50_000,),
                gamma=0.1,
                seed=3407,
            )
        if part == "length":
            # MoMask ships no script for this part: Adam 1e-4 and clipping 0.5 are its trainer's values; the
            # batch size and length are not published (64 and 50 epochs here are this project's choice).
            return cls(
                part="length",
                epochs=50,
                batch_size=64,
                lr=1e-4,
                betas=(0.9, 0.999),
                grad_clip=0.5,
                seed=3407,
            )
        raise ConfigError("TrainSettings.published", "part", f"must be one of {list(PARTS)}, got {part!r}")

    @classmethod
    def small(cls, part: str) -> TrainSettings:
        """The small configuration's recipe: all four parts train on the embedded dataset (2000 motions and
        their mirrors) in at most 10 minutes on two CPU cores (449 s measured on an otherwise idle 2-core
        machine: benchmarks/train_small.py). Far fewer steps than MoMask, so higher rates, short warm-ups."""
        # Found by measurement (benchmarks/train_small.py): per unit of compute, small batches and high rates
        # win at this budget. The masked transformer gets the largest share: it decides whether the motions
        # follow the text; the residual layers add detail the pictures barely show.
        if part == "rvq":
            return cls(part="rvq", steps=2000, batch_size=32, lr=2e-3, warmup_steps=100, milestones=(1600,))
        if part == "mask":
            return cls(
                part="mask",
                steps=1000,
                batch_size=64,
                lr=3e-3,
                weight_decay=1e-5,
                warmup_steps=100,
                milestones=(800,),
            )
        if part == "residual":
            return cls(
                part="residual",
                steps=300,
                batch_size=32,
                lr=2e-3,
                weight_decay=1e-5,
                warmup_steps=30,
                milestones=(240,),
            )
        if part == "length":
            # Beyond ~1000 steps it overfits: caption wording says little about the length.
            return cls(
                part="length",
                steps=600,
                batch_size=64,
                lr=1e-3,
                betas=(0.9, 0.999),
                grad_clip=0.5,
            )
        raise ConfigError("TrainSettings.small", "part", f"must be one of {list(PARTS)}, got {part!r}")


def learning_rate(settings: TrainSettings, step: int) -> float:
    """The rate of optimiser step `step` (0-based): linear warm-up, then `gamma` at each milestone passed."""
    warmup = min(1.0, (step + 1) / (settings.warmup_steps + 1)) if step < settings.warmup_steps else 1.0
    decays = sum(1 for milestone in settings.milestones if step >= milestone)
    return settings.lr * warmup * settings.gamma**decays
