"""The Method interface (version 1): what an unlearning method implements, and what it may leave alone.

A method is a subclass of `Method` in `methods/<name>/method.py`, named by `class:` in its `method.yaml`.
Only `unlearn` is required; `generate` defaults to the backbone's own generation:

    from benchmark.api import Method, UnlearnOutcome

    class OriginalMethod(Method):
        def unlearn(self, model, request, workdir):
            return UnlearnOutcome(backbone=model.backbone, record={"change": "none"})

A sampling-time method changes how motions are drawn instead of (or besides) the weights: it overrides the
`logits_processor` hook, which the default `generate` hands to both transformers, and passes what it needs
from `unlearn` through `UnlearnOutcome.record` (stored in the model folder):

    class BanCodes(Method):
        def unlearn(self, model, request, workdir):
            codes = find_concept_codes(model, request)            # the method's own analysis
            return UnlearnOutcome(backbone=model.backbone, record={"banned": codes})

        def logits_processor(self, model, request):
            banned = self.unlearn_record(model)["banned"]
            def forbid(logits, step):
                if step.layer == 0:
                    logits[..., banned] = -float("inf")
                return logits
            return forbid

The entrypoint (`benchmark.api.entrypoint`, `hmu method <verb>`) does everything around these calls: it
reads and checks the request, fills in default hyper-parameters, loads the model on the device, seeds the
random generators, saves the outcome as a model folder with its provenance, writes the motions, checks every
output and writes `result.json`. The method never writes into the output folder itself.

Why an abstract base class and not a Protocol (as the text encoders and evaluators are): a method inherits
working defaults (`describe`, `generate`, `logits_processor`, `unlearn_record`), and discovery can refuse,
by name, a class that is not a Method or leaves `unlearn` unimplemented. A Protocol with default methods
would have to be subclassed anyway, and its runtime check sees only that attributes exist.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.api.contract import (
    INTERFACE_VERSION,
    GenerateRequest,
    MethodDescription,
    UnlearnProvenance,
    UnlearnRequest,
)
from benchmark.api.method_yaml import MethodSpec
from benchmark.backbone.generation import Prompt, generate_motions, text_encoder_for
from benchmark.backbone.model import CARD_FILE, Backbone, LoadedModel
from benchmark.backbone.transformers import LogitsProcessor
from benchmark.errors import HMUError

__all__ = ["INTERFACE_VERSION", "Method", "MethodError", "UnlearnOutcome"]


class MethodError(HMUError):
    """A method cannot do what it was asked with the inputs it got (e.g. a model it did not unlearn)."""


@dataclass(frozen=True)
class UnlearnOutcome:
    """What `Method.unlearn` returns; the entrypoint saves it as the output model folder."""

    backbone: Backbone
    """The unlearned backbone (it may be the input's, edited in place). Same text encoder and dataset as the
    base model: only weights (and, rarely, sizes) change."""
    record: dict[str, Any] = field(default_factory=dict)
    """Plain JSON facts to keep with the model, in its provenance (part of its hash, so nothing that varies
    between equal runs): what was changed (`{"censored_codes": [...]}`), and anything `generate` needs."""
    notes: tuple[str, ...] = ()
    """Human-readable remarks for `result.json` `messages` (not part of the model)."""


class Method(abc.ABC):
    """An unlearning method behind the container verbs `describe`, `unlearn` and `generate`.

    Each verb runs in its own process (its own container), on a fresh instance built with the method's
    `MethodSpec`: an instance keeps no state between verbs. What `generate` needs from `unlearn` travels in
    the model folder, as weights or as `UnlearnOutcome.record`.

    Responsibilities of a subclass:
    - `unlearn` (required): remove the request's concept from the model and return the backbone. Use only
      what the request gives (the forget and retain subsets of the training split, the data folder's
      training data; never test data), be deterministic for a given `request.seed` (the entrypoint has seeded
      Python, numpy and torch with it), stay within `request.time_budget_s`, write scratch files only under
      `workdir`. Do not save the model (the entrypoint saves it with its provenance) and do not evaluate it
      (the harness does, with the pinned evaluator, so no method grades its own homework).
    - `generate` (optional): the motions for the prompts. The default is the backbone's own sampling with
      `logits_processor`; override it only when generation itself changes. It must return exactly the keys
      `<prompt id>/<repeat>` with float32 (frames, feature_dim) de-normalised arrays, the asked lengths, and
      draw from the prompts' seeds.
    - `logits_processor` (optional): the sampling-time hook used by the default `generate`.
    - `describe` (rarely overridden): the method.yaml as `MethodDescription`; `hmu methods validate` checks
      that it agrees with the YAML.
    """

    def __init__(self, spec: MethodSpec) -> None:
        self.spec = spec
        """The method's `method.yaml`: name, version, defaults, sweep, resources."""

    def describe(self) -> MethodDescription:
        """Who the method is and what it takes (printed by the `describe` verb)."""
        return self.spec.description_record()

    @abc.abstractmethod
    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        """Remove `request.concept` from `model` (loaded on the run's device, in eval mode).

        `request.parameters` holds every hyper-parameter (method.yaml defaults filled in), and its paths
        (`data_dir`, `clip_weights`) are resolved. `workdir` is an empty scratch folder, deleted afterwards.
        """

    def generate(
        self, model: LoadedModel, prompts: Sequence[Prompt], request: GenerateRequest
    ) -> dict[str, np.ndarray]:
        """Motions for `prompts`: `"<id>/<repeat>"` -> float32 (frames, feature_dim), de-normalised.

        Default: the backbone's own generation (`generate_motions`) with the request's settings, the text
        encoder the model folder records, and `self.logits_processor(model, request)`.
        """
        device = model.backbone.mean.device
        encoder = text_encoder_for(model.card, device, clip_weights=request.clip_weights)
        return generate_motions(
            model.backbone,
            encoder,
            prompts,
            request.generation_settings(),
            logits_processor=self.logits_processor(model, request),
        )

    def logits_processor(self, model: LoadedModel, request: GenerateRequest) -> LogitsProcessor | None:
        """A function `(logits (B, n, V), SamplingStep) -> logits` applied to the guided logits of every
        decoding pass of both transformers (return -inf to forbid a code), or None (the default: none)."""
        return None

    def unlearn_record(self, model: LoadedModel) -> dict[str, Any]:
        """The `record` this method's `unlearn` stored with `model`; a MethodError if another method (or
        none) made the model."""
        provenance = model.card.provenance
        if provenance.get("kind") != "unlearned":
            raise MethodError(f"{model.path}: the model was not made by an unlearning method")
        made = UnlearnProvenance.from_json(provenance, model.path / CARD_FILE)
        if made.method != self.spec.name:
            raise MethodError(
                f"{model.path}: the model was unlearned by {made.method!r}, not {self.spec.name!r}"
            )
        return made.record
