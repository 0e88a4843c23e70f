"""original: the base model, unchanged; the baseline row of every table.

`unlearn` returns the backbone as it was loaded. The entrypoint saves it as a new model folder whose weights
equal the base model's; only its provenance differs (method `original`, the parent's hash), so its model hash
differs too. `generate` is the backbone's own generation (the `Method` default).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.api import Method, UnlearnOutcome, UnlearnRequest
from benchmark.backbone import LoadedModel


class OriginalMethod(Method):
    """No unlearning: the reference point that shows what every other method changes."""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        return UnlearnOutcome(
            backbone=model.backbone,
            record={"change": "none"},
            notes=("no change: the base model's weights, saved with this run's provenance",),
        )
