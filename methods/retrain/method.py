"""retrain: the backbone trained again from scratch without the forget motions (D_r, the reference).

HMU's "MoMask D_r" (spec/unlearning-methods.md section 2): every part (RVQ, masked and residual
transformers, length estimator) is trained from a fresh initialisation on the base model's training motions
less the request's forget ids, with the base model's own recipe. It is what unlearning approximates, so the
bench evaluates it first and scores every method's forget-set metrics by their distance to it.

Honest by construction: the same configuration, the same text encoder, the same normalisation, the same
settings part by part (steps, batch, rates, schedule) as `model.json` records for the base model, and the
same training code (`benchmark.training.train_part`, as `hmu train`). Only the seed differs: the request's,
so that each seed of a bench is an independent retraining. The time budget is checked as training goes
(`benchmark.unlearning.training.TimeBudget`): a run projected past it stops with an error; it is never
shortened into a weaker reference.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from benchmark.api import Method, MethodError, UnlearnOutcome, UnlearnRequest
from benchmark.backbone import LoadedModel
from benchmark.backbone.model import Backbone
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.errors import DataFormatError
from benchmark.training import MODEL_PARTS, PARTS, MotionData, resolve_split
from benchmark.training.loops import data_record, part_record, train_part
from benchmark.unlearning.training import (
    TimeBudget,
    recipe_settings,
    recorded_split,
    subset_data,
    text_features,
)


class RetrainMethod(Method):
    """Train every part again, from scratch, on the base model's training motions less the forget set."""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        budget = TimeBudget(request.time_budget_s)
        parameters = request.parameters
        base = model.backbone
        device = str(base.mean.device)
        parts = [part for part in PARTS if MODEL_PARTS[part] in base.parts()]
        settings = {
            part: dataclasses.replace(
                recipe_settings(model, part, parameters["recipe"]),
                seed=request.seed,
                device=device,
                progress=False,
            )
            for part in parts
        }
        split = recorded_split(model, parts) if parameters["split"] == "base" else parameters["split"]
        try:
            base_ids = resolve_split(HumanML3DFolder(request.data_dir), split)
        except DataFormatError as error:
            raise MethodError(
                f"the base model's training split {split!r} is not in the request's data folder ({error}); "
                "set the parameter split to one of its splits"
            ) from None
        forget = set(request.forget.motion_ids)
        ids = [motion_id for motion_id in base_ids if motion_id not in forget]
        data = subset_data(request, ids, base, workdir, "retain")
        texts = text_features(model, request)
        texts.precompute(data.captions(data.train_ids), progress=False)

        torch.manual_seed(request.seed)  # the initialisation of every part, as `hmu train all`
        backbone = Backbone(
            base.config, base.mean.cpu(), base.std.cpu(), length_estimator=base.length_estimator is not None
        ).to(base.mean.device)
        # As `hmu train` records it, less what changes from run to run (the record is part of the model
        # hash): the data folder's path, and the id list file's (the split name instead).
        facts = {**data_record(data), "split": split}
        del facts["data"]
        records: dict[str, Any] = {}
        notes = []
        for part in parts:
            result = train_part(
                part, backbone, data, texts, settings[part], step_hook=budget.hook(f"retrain {part}")
            )
            records[MODEL_PARTS[part]] = part_record(part, result, settings[part], facts, backbone, texts)
            notes.append(f"{part}: {result.steps} steps in {result.seconds:.1f} s")

        same_data = _same_training_data(model, request, split, parts)
        if same_data is False:
            notes.append(
                f"the request's {split!r} motions differ from those the base model was trained on "
                "(data_sha256): D_r is not the base model's data less the forget set"
            )
        record = {
            "recipe": parameters["recipe"],
            "split": split,
            "base_ids": len(base_ids),
            "forget_ids_removed": len(base_ids) - len(ids),
            "train_ids": len(ids),
            "same_data_as_base": same_data,
            "parts": records,
        }
        notes.append(f"trained on {len(ids)} of the {len(base_ids)} {split!r} motions, forget ids left out")
        return UnlearnOutcome(backbone=backbone.eval(), record=record, notes=tuple(notes))


def _same_training_data(
    model: LoadedModel, request: UnlearnRequest, split: str, parts: list[str]
) -> bool | None:
    """Whether the request's `split` motions (with the model's normalisation) hash to the `data_sha256` the
    base model records; None when it records none (another recipe's model)."""
    recorded = {
        model.card.provenance.get("parts", {}).get(MODEL_PARTS[part], {}).get("data_sha256") for part in parts
    }
    if len(recorded) != 1 or None in recorded:
        return None
    base = model.backbone
    data = MotionData.open(
        request.data_dir, split, None, mean=base.mean.cpu().numpy(), std=base.std.cpu().numpy()
    )
    return data.content_hash() == recorded.pop()
