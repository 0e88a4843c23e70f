"""code_ban: forbid (or down-weight) the concept's RVQ codes while the transformers sample.

LCR (methods/lcr) finds the codes that occur far more often in forget motions than in retain motions and
overwrites their codebook rows, so the transformers still pick them and they decode to something else. This
method finds the same codes (`benchmark.unlearning.codes`, the same statistics, cache and rankings) and acts
one step earlier: while sampling, it takes them out of the transformers' choice, so the sampler picks the
most likely *other* codes and the decoder is untouched. No weight changes: `unlearn` only stores the codes
in the model's provenance (`record`, part of the model hash), and `generate` (the default generation) hands
both transformers a logits processor that reads them back.

- `mode: forbid` sets the flagged codes' guided logits to -inf in every decoding step of the layers
  flagged; `mode: downweight` subtracts `penalty` from them (a prior against the concept, not a ban).
- `layers`: the RVQ layers whose codes are flagged and banned, from the base layer (the masked
  transformer) up (the residual transformer's layers 1, 2, ...).

The processor acts on the logits after classifier-free guidance and before top-k filtering, so top-k then
keeps the most likely allowed codes; the masked transformer's confidence (which tokens to re-mask) is
computed from the processed logits, so a position whose likely codes are all banned is re-masked first.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from benchmark.api import GenerateRequest, Method, MethodError, UnlearnOutcome, UnlearnRequest
from benchmark.backbone import LoadedModel
from benchmark.backbone.transformers import LogitsProcessor, SamplingStep
from benchmark.unlearning.codes import cached_statistics, select_codes

MODES: tuple[str, ...] = ("forbid", "downweight")
"""How a flagged code is treated while sampling: never drawn, or drawn less."""


class CodeBanMethod(Method):
    """Flag the concept's codes from forget/retain statistics; ban them while sampling."""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        parameters = request.parameters
        rvq = model.backbone.config.rvq
        k, layers, mode, penalty = (parameters[name] for name in ("k", "layers", "mode", "penalty"))
        if k < 1:
            raise MethodError(f"parameters.k: must be >= 1, got {k}")
        if not 1 <= layers <= rvq.num_quantizers:
            raise MethodError(f"parameters.layers: must be in [1, {rvq.num_quantizers}], got {layers}")
        if mode not in MODES:
            raise MethodError(f"parameters.mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if mode == "downweight" and penalty <= 0:
            raise MethodError(f"parameters.penalty: must be > 0 to down-weight, got {penalty}")
        statistics, key, notes = cached_statistics(
            model.backbone, request, parameters["statistics_passes"], workdir
        )
        banned = [select_codes(statistics.forget[q], statistics.retain[q], k) for q in range(layers)]
        if any(len(codes) >= rvq.nb_code for codes in banned):
            raise MethodError(f"k={k} flags every code of a layer: nothing would be left to sample")
        sizes = ", ".join(f"layer {q}: {len(codes)}" for q, codes in enumerate(banned))
        notes.append(f"codes banned while sampling ({mode}, k={k}): {sizes}")
        record = {
            "mode": mode,
            "penalty": penalty if mode == "downweight" else None,
            "banned_codes": banned,
            "forget_counts": [statistics.forget[q][codes].tolist() for q, codes in enumerate(banned)],
            "retain_counts": [statistics.retain[q][codes].tolist() for q, codes in enumerate(banned)],
            "documents": {"forget": int(statistics.documents[0]), "retain": int(statistics.documents[1])},
            "statistics_key": key,
        }
        return UnlearnOutcome(backbone=model.backbone, record=record, notes=tuple(notes))

    def logits_processor(self, model: LoadedModel, request: GenerateRequest) -> LogitsProcessor:
        record = self.unlearn_record(model)
        return ban_codes(record["banned_codes"], record["mode"], record["penalty"])


def ban_codes(banned: list[list[int]], mode: str, penalty: float | None) -> LogitsProcessor:
    """The processor: layer q's logits (B, n, V) lose the codes `banned[q]` (-inf, or minus `penalty`);
    layers beyond `len(banned)` pass unchanged."""
    rows = [torch.as_tensor(codes, dtype=torch.long) for codes in banned]

    def process(logits: Tensor, step: SamplingStep) -> Tensor:
        if step.layer >= len(rows) or not len(rows[step.layer]):
            return logits
        codes = rows[step.layer].to(logits.device)
        logits = logits.clone()
        if mode == "forbid":
            logits[..., codes] = float("-inf")
        else:
            logits[..., codes] -= float(penalty or 0.0)
        return logits

    return process
