"""graddiff: Gradient Difference: gradient ascent on the forget motions, descent on the retain motions.

The GradDiff baseline of TOFU (Maini, Feng, Schwarzschild, Lipton, Kolter, "TOFU: A Task of Fictitious
Unlearning for LLMs", COLM 2024, arXiv 2401.06121; the name and form as OpenUnlearning's `GradDiff`
trainer), carried from next-token prediction to MoMask's masked-token prediction. Each step takes a batch
of retain items and a batch of forget items (caption, motion crop) and minimises

    L = L_mask(retain) − forget_weight · L_mask(forget)

where L_mask is the masked transformer's own training loss (cross-entropy of the masked base-layer codes
of the RVQ, MoMask's masking and condition dropout). The ascent term pushes the model away from predicting
the concept's codes for the concept's captions; the descent term keeps the rest where it was. Only the
masked transformer changes: it decides which motion a caption gets, the residual layers add detail. The
ascent is unbounded, so the run is short (`steps_fraction` of the base model's masked-transformer steps)
and at the rate the base training ended at (`lr_scale` times it).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from benchmark.api import Method, MethodError, UnlearnOutcome, UnlearnRequest
from benchmark.backbone import LoadedModel
from benchmark.data.torch_datasets import TrainingItem, TrainingMotionDataset
from benchmark.training import TextFeatureCache, run_loop, training_items
from benchmark.unlearning.training import (
    TimeBudget,
    continued,
    recipe_settings,
    subset_data,
    text_features,
)


class PairedItems(Dataset[tuple[TrainingItem, TrainingItem]]):
    """Item i is (retain item i, forget item i mod len(forget)): every batch holds as many of each. An epoch
    is one pass over the retain items; the forget items are cycled."""

    def __init__(self, retain: TrainingMotionDataset, forget: TrainingMotionDataset) -> None:
        if len(forget) == 0 or len(retain) == 0:
            raise MethodError("graddiff needs forget and retain motions long enough to train on")
        self.retain = retain
        self.forget = forget

    def set_epoch(self, epoch: int) -> None:
        self.retain.set_epoch(epoch)
        self.forget.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.retain)

    def __getitem__(self, index: int) -> tuple[TrainingItem, TrainingItem]:
        return self.retain[index], self.forget[index % len(self.forget)]


class GradDiffMethod(Method):
    """Ascend the masked-token loss on forget items while descending it on retain items."""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        budget = TimeBudget(request.time_budget_s)
        parameters = request.parameters
        forget_weight = float(parameters["forget_weight"])
        if forget_weight <= 0:
            raise MethodError(f"parameters.forget_weight: must be > 0, got {forget_weight}")
        backbone = copy.deepcopy(model.backbone)
        device = backbone.mean.device
        base = recipe_settings(model, "mask", parameters["recipe"])
        fraction, lr_scale = parameters["steps_fraction"], parameters["lr_scale"]
        settings = continued(base, fraction, lr_scale, request.seed, str(device))
        retain = subset_data(request, request.retain.motion_ids, backbone, workdir, "retain")
        forget = subset_data(request, request.forget.motion_ids, backbone, workdir, "forget")
        texts = text_features(model, request)
        captions = retain.captions(retain.train_ids) + forget.captions(forget.train_ids)
        texts.precompute(captions, progress=False)
        unit = backbone.frames_per_token
        items = PairedItems(
            training_items(retain, settings, unit, request.seed),
            training_items(forget, settings, unit, request.seed + 1),  # other crops than the retain side's
        )
        mask, rvq = backbone.mask_transformer, backbone.rvq.eval()

        def prepare(batch: Any) -> tuple[tuple[Tensor, Tensor, Tensor], ...]:
            return tuple(_inputs(side, rvq, texts, device, unit) for side in batch)

        def objective(inputs: tuple[tuple[Tensor, Tensor, Tensor], ...]) -> tuple[Tensor, dict[str, Tensor]]:
            retain_loss, _ = mask(*inputs[0])
            forget_loss, _ = mask(*inputs[1])
            loss = retain_loss - forget_weight * forget_loss
            return loss, {"retain_loss": retain_loss.detach(), "forget_loss": forget_loss.detach()}

        loop = run_loop(
            "graddiff",
            mask,
            items,
            prepare,
            objective,
            settings,
            checkpoint=None,
            fingerprint={},
            step_hook=budget.hook("graddiff"),
        )
        mask.eval()
        logs = {name: round(value, 6) for name, value in loop.last_logs.items()}
        record = {
            "recipe": parameters["recipe"],
            "steps": loop.steps,
            "lr": settings.lr,
            "batch_size": settings.batch_size,
            "retain_ids": len(retain.train_ids),
            "forget_ids": len(forget.train_ids),
            "final": logs,
        }
        notes = (
            f"{loop.steps} steps at lr {settings.lr:.3g} in {loop.seconds:.1f} s; last steps: retain loss "
            f"{logs['retain_loss']:.3f}, forget loss {logs['forget_loss']:.3f}",
        )
        return UnlearnOutcome(backbone=backbone.eval(), record=record, notes=notes)


def _inputs(
    batch: Any, rvq: torch.nn.Module, texts: TextFeatureCache, device: torch.device, unit: int
) -> tuple[Tensor, Tensor, Tensor]:
    """A collated batch of training items -> (base-layer codes, text features, lengths in tokens)."""
    text, motion, length = batch
    codes = rvq.encode(motion.to(device))
    return codes[..., 0], texts(text).to(device), length.to(device) // unit
