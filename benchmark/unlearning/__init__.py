"""Building blocks that several unlearning methods share (the methods themselves live in `methods/<name>/`).

- `closed_form`: UCE's closed-form edit of a linear layer and RECE's adversarial embeddings, with the
  helpers that apply them to the text projections (`cond_emb`) of both transformers (methods `uce`, `rece`).
"""
