"""What the training-based methods share (`retrain`, `finetune`, `graddiff`): the base model's recipe, the
request's motions as training data, and the time budget.

    >>> budget = TimeBudget(request.time_budget_s)
    >>> settings = recipe_settings(model, "mask", "base")            # what the base model was trained with
    >>> data = subset_data(request, request.retain.motion_ids, model.backbone, workdir, "retain")
    >>> texts = text_features(model, request)
    >>> settings = continued(settings, fraction=0.5, lr_scale=1.0, seed=request.seed, device="cpu")
    >>> train_part("mask", backbone, data, texts, settings, step_hook=budget.hook("finetune mask"))

The recipe. A model folder made by `hmu train` records, for each part, the `TrainSettings` it was trained with
(`provenance.parts.<part>.settings`) and its training split; `recipe_settings(model, part, "base")` reads them
back. A model without that record (imported MoMask checkpoints, hand-made test models) needs the recipe named:
`small` or `published` (`TrainSettings.small`, `TrainSettings.published`).

The time budget. The harness kills a method past `time_budget_s`. A training method instead stops with a
`MethodError` as soon as its steps still to do are projected past the budget (after `PROJECTION_STEPS` steps,
at the rate measured so far), so that a run that cannot finish says so early, and why. It never shortens
training to fit: fewer steps would make another, weaker model, and the output would depend on the machine's
speed. A part not yet started is not projected until it starts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.api.contract import UnlearnRequest
from benchmark.api.method import MethodError
from benchmark.backbone.generation import text_encoder_for
from benchmark.backbone.model import CARD_FILE, Backbone, LoadedModel
from benchmark.data.layout import write_split_ids
from benchmark.training import MODEL_PARTS, MotionData, TextFeatureCache, TrainSettings
from benchmark.training.engine import StepHook

RECIPES: tuple[str, ...] = ("base", "small", "published")
"""Where a method's training settings come from: the base model's record, or a named recipe."""

PROJECTION_STEPS = 10
"""Steps timed before the rest of a part is projected against the budget (the first steps are slower)."""

RESERVE = 0.05
"""Share of the budget kept for saving, reloading and hashing the model after training."""


class BudgetExceeded(MethodError):
    """A training method is projected to run past its time budget (it stops before the harness kills it)."""


@dataclass
class TimeBudget:
    """A run's wall-clock budget (`UnlearnRequest.time_budget_s`), counted from its creation."""

    seconds: float | None
    """The budget; None: no limit (no check)."""
    started: float = field(default_factory=time.perf_counter)
    """When the clock started (`time.perf_counter`)."""

    def spent(self) -> float:
        """Seconds since the clock started."""
        return time.perf_counter() - self.started

    def hook(self, what: str) -> StepHook | None:
        """A `run_loop` step hook that raises BudgetExceeded once the run is projected past the budget (less
        `RESERVE`); None without a budget."""
        if self.seconds is None:
            return None
        usable = self.seconds * (1 - RESERVE)

        def check(done: int, left: int, seconds: float) -> None:
            spent = self.spent()
            if spent > usable:
                raise BudgetExceeded(
                    f"{what}: {spent:.0f} s spent, past the usable {usable:.0f} s of the "
                    f"{self.seconds:.0f} s time budget, with {left} steps still to do"
                )
            if done >= PROJECTION_STEPS and left:
                projected = spent + left * seconds / done
                if projected > usable:
                    raise BudgetExceeded(
                        f"{what}: projected to end after {projected:.0f} s ({seconds / done:.3f} s per "
                        f"step, {left} steps still to do), past the usable {usable:.0f} s of the "
                        f"{self.seconds:.0f} s time budget (resources.time_limit_s); stopped early"
                    )

        return check


def recipe_settings(model: LoadedModel, part: str, recipe: str) -> TrainSettings:
    """The training settings of `part` (rvq, mask, residual, length): those the base model's folder records
    (`recipe="base"`), or a named recipe (`small`, `published`). A missing record is a MethodError that says
    which parameter to set."""
    if recipe == "small":
        return TrainSettings.small(part)
    if recipe == "published":
        return TrainSettings.published(part)
    if recipe != "base":
        raise MethodError(f"parameters.recipe: expected one of {', '.join(RECIPES)}, got {recipe!r}")
    entry = _part_record(model, part)
    return TrainSettings.from_provenance(
        entry.get("settings"), model.path / CARD_FILE, f"provenance.parts.{MODEL_PARTS[part]}.settings"
    )


def recorded_split(model: LoadedModel, parts: Iterable[str]) -> str:
    """The training split the base model's folder records for `parts` (they must agree): a split name of
    the dataset (`train`) or the id list file it was given."""
    splits = {str(_part_record(model, part).get("split")) for part in parts}
    if len(splits) != 1:
        raise MethodError(
            f"{model.path / CARD_FILE}: the parts were trained on different splits ({sorted(splits)}); "
            "set the parameter split"
        )
    return splits.pop()


def _part_record(model: LoadedModel, part: str) -> dict[str, Any]:
    name = MODEL_PARTS[part]
    entry = model.card.provenance.get("parts", {}).get(name)
    if not isinstance(entry, dict):
        kind = model.card.provenance.get("kind", "unknown")
        raise MethodError(
            f"{model.path / CARD_FILE}: no training record of the {name} (provenance.parts.{name}; the model "
            f"is {kind!r}, not trained by hmu train): set the parameter recipe to small or published"
        )
    return entry


def continued(
    settings: TrainSettings, fraction: float, lr_scale: float, seed: int, device: str
) -> TrainSettings:
    """Settings to train a trained part further: `fraction` of the recipe's steps (or epochs; at least one)
    at a constant rate, `lr_scale` times the recipe's rate after all its decays (where the base training
    ended; MoMask's resumed fine-tuning continues at that rate), without warm-up, seeded by `seed` (the
    request's)."""
    if fraction <= 0:
        raise MethodError(f"parameters.steps_fraction: must be > 0, got {fraction}")
    if lr_scale <= 0:
        raise MethodError(f"parameters.lr_scale: must be > 0, got {lr_scale}")
    steps = None if settings.steps is None else max(1, round(settings.steps * fraction))
    epochs = None if settings.epochs is None else max(1, round(settings.epochs * fraction))
    return dataclasses.replace(
        settings,
        steps=steps,
        epochs=epochs,
        lr=settings.lr * settings.gamma ** len(settings.milestones) * lr_scale,
        warmup_steps=0,
        milestones=(),
        seed=seed,
        device=device,
        progress=False,
    )


def subset_data(
    request: UnlearnRequest, ids: Iterable[str], backbone: Backbone, workdir: Path, name: str
) -> MotionData:
    """The motions `ids` of the request's data folder as training data, normalised in the model's space
    (`<workdir>/<name>.txt` lists them); no validation split."""
    ids = list(ids)
    if not ids:
        raise MethodError(f"the {name} set of the request lists no motion ids to train on")
    path = workdir / f"{name}.txt"
    write_split_ids(path, ids)
    mean, std = backbone.mean.cpu().numpy(), backbone.std.cpu().numpy()
    return MotionData.open(request.data_dir, str(path), None, mean=mean, std=std)


def text_features(model: LoadedModel, request: UnlearnRequest) -> TextFeatureCache:
    """A caption feature cache with the text encoder the model folder records."""
    device = model.backbone.mean.device
    return TextFeatureCache(text_encoder_for(model.card, device, clip_weights=request.clip_weights))
