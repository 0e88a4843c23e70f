"""Building blocks that several unlearning methods share (the methods themselves live in `methods/<name>/`).

- `closed_form`: UCE's closed-form edit of a linear layer and RECE's adversarial embeddings, with the
  helpers that apply them to the text projections (`cond_emb`) of both transformers (methods `uce`, `rece`).
- `codes`: document-frequency statistics of the RVQ codes over forget and retain motions, their rankings and
  their keyed cache: which codes mark the concept (methods `lcr`, `code_ban`).
- `training`: what the training-based methods share: the base model's recorded recipe, the request's motions
  as training data, continued-training settings and the time budget (methods `retrain`, `finetune`,
  `graddiff`).
"""
