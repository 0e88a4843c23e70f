"""finetune: the two transformers trained further on the retain motions only, the RVQ frozen.

HMU's fine-tuning baseline (spec/unlearning-methods.md section 2): MoMask's `train_t2m_transformer.py` and
`train_res_transformer.py` resumed with `--is_continue` on the retain-only ("clean") dataset, the VQ
frozen. Training on the retain set alone never shows the model a concept caption with its motion again;
the concept fades as far as the retain data overwrites it (catastrophic forgetting used on purpose).

The recipe is the base model's (`model.json`), continued: `steps_fraction` of its steps per transformer at
`lr_scale` times the rate its schedule ended at (MoMask's resumed run continues at that rate), no warm-up,
seeded by the request. The shared pieces are `benchmark.unlearning.training`; the training itself is
`benchmark.training.train_part`, the code `hmu train` runs.
"""

from __future__ import annotations

import copy
from pathlib import Path

from benchmark.api import Method, UnlearnOutcome, UnlearnRequest
from benchmark.backbone import LoadedModel
from benchmark.training.loops import train_part
from benchmark.unlearning.training import (
    TimeBudget,
    continued,
    recipe_settings,
    subset_data,
    text_features,
)

PARTS: tuple[str, ...] = ("mask", "residual")
"""The parts fine-tuned, in order; the RVQ (and so every code) and the length estimator stay as they were."""


class FinetuneMethod(Method):
    """Train the masked and residual transformers further on the retain set, the codebook frozen."""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        budget = TimeBudget(request.time_budget_s)
        parameters = request.parameters
        backbone = copy.deepcopy(model.backbone)
        device = str(backbone.mean.device)
        data = subset_data(request, request.retain.motion_ids, backbone, workdir, "retain")
        texts = text_features(model, request)
        texts.precompute(data.captions(data.train_ids), progress=False)
        record: dict[str, object] = {"recipe": parameters["recipe"], "train_ids": len(data.train_ids)}
        notes = []
        fraction, lr_scale = parameters["steps_fraction"], parameters["lr_scale"]
        for part in PARTS:
            base = recipe_settings(model, part, parameters["recipe"])
            settings = continued(base, fraction, lr_scale, request.seed, device)
            result = train_part(
                part, backbone, data, texts, settings, step_hook=budget.hook(f"finetune {part}")
            )
            record[part] = {
                "steps": result.steps,
                "lr": settings.lr,
                "batch_size": settings.batch_size,
                "final_loss": round(result.metrics[f"{part}_train_loss"], 6),
            }
            notes.append(f"{part}: {result.steps} steps at lr {settings.lr:.3g} in {result.seconds:.1f} s")
        return UnlearnOutcome(backbone=backbone.eval(), record=record, notes=tuple(notes))
