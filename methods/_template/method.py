"""my_method: <one line: what the method does>.

<A paragraph: which weights (or which sampling step) the method changes, with what data, and why that
removes the concept. Cite the paper.>

Template: `unlearn` below returns the model unchanged; replace its body with the method. `request` holds
the concept (`request.concept.keywords`), the forget and retain subsets of the training split
(`request.forget.motion_ids`, `.prompts`), the dataset folder (`request.data_dir`, read-only), the seed
(already applied to Python, numpy and torch) and the hyper-parameters (`request.parameters`, defaults
filled in). Do not save or evaluate the model: the entrypoint and the harness do.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.api import Method, UnlearnOutcome, UnlearnRequest
from benchmark.backbone import LoadedModel


class MyMethod(Method):
    """<The method in one line.>"""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        strength = request.parameters["strength"]
        backbone = model.backbone  # on the run's device, in eval mode; edit it in place or build a new one
        # <the method: e.g. edit backbone.rvq.codebooks, backbone.mask_transformer.cond_emb, or fine-tune>
        return UnlearnOutcome(
            backbone=backbone,
            # Plain JSON kept in the model's provenance (part of its hash): what changed, and anything this
            # method's generate needs (read it back there with self.unlearn_record(model)).
            record={"strength": strength},
            notes=(f"template: nothing changed (strength {strength})",),
        )

    # Optional, for a method that acts while sampling: the default generate passes this function the
    # guided logits (B, n, codes) of every decoding step of both transformers; return -inf to forbid codes.
    #
    # def logits_processor(self, model, request):
    #     banned = self.unlearn_record(model)["banned_codes"]
    #     def forbid(logits, step):
    #         if step.layer == 0:
    #             logits[..., banned] = float("-inf")
    #         return logits
    #     return forbid
