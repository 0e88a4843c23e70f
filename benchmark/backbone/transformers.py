"""MoMask's two token transformers: the masked transformer (RVQ layer 0) and the residual one (layers 1..Q-1).

Both are text-conditioned by a feature vector (B, cond_dim) given by the caller (CLIP or MiniLM, computed
outside): it becomes one prefix token through `cond_emb`, and a zero vector is the unconditional input of
classifier-free guidance. Module names reproduce the official state-dict keys (`seqTransEncoder.layers.0.*`).

    mask = MaskTransformer(MaskTransformerConfig.small())
    loss, accuracy = mask(codes[..., 0], text_features, token_lengths)          # training step
    base = mask.generate(text_features, token_lengths, timesteps=10, cond_scale=4)  # (B, n), -1 = pad
    residual = ResidualTransformer(ResidualTransformerConfig.small())
    codes = residual.generate(base, text_features, token_lengths, cond_scale=5)   # (B, n, Q)
    motion = vq.decode(codes)

A sampling-time unlearning method can pass `logits_processor(logits, step) -> logits` to either `generate`;
it sees the guided logits (B, n, V) before top-k filtering and may return -inf to forbid tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.backbone.config import MaskTransformerConfig, ResidualTransformerConfig


@dataclass(frozen=True)
class SamplingStep:
    """What a logits processor is told about the decoding pass it is called in."""

    layer: int
    """RVQ layer being predicted: 0 in the masked transformer, 1..Q-1 in the residual transformer."""
    step: int
    """Decoding iteration, 0-based (always 0 in the residual transformer: one shot per layer)."""
    num_steps: int
    """Iterations for this layer (`timesteps`, or 1)."""
    ids: Tensor
    """(B, n) input ids of this pass: mask_id where masked, pad_id at pads (residual: layer-1 ids)."""
    padding_mask: Tensor
    """(B, n) True beyond each sample's token length."""


LogitsProcessor = Callable[[Tensor, SamplingStep], Tensor]
"""(guided logits (B, n, V), step) -> logits of the same shape; -inf forbids a token."""

Generators = torch.Generator | Sequence[torch.Generator] | None
"""Randomness of `generate`: one generator for the batch, or one per sample (row b draws only from
generator b, so a sample does not depend on the others in its batch), or None (the global one)."""


# ----------------------------------------------------------------------------- shared building blocks


class InputProcess(nn.Module):
    """(B, n, in_dim) -> sequence-first (n, B, latent_dim) through one Linear."""

    def __init__(self, in_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.poseEmbedding = nn.Linear(in_dim, latent_dim)  # MoMask's name, kept for checkpoint compatibility

    def forward(self, x: Tensor) -> Tensor:
        return self.poseEmbedding(x.permute(1, 0, 2))


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal table to (n, B, d), then dropout."""

    def __init__(self, d_model: int, dropout: float, max_len: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        frequency = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
        )
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * frequency)
        pe[:, 1::2] = torch.cos(position * frequency)
        # Persistent (it is in the official state dicts as position_enc.pe [max_len, 1, d]).
        self.register_buffer("pe", pe.unsqueeze(1))

    pe: Tensor

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] > self.pe.shape[0]:
            raise ValueError(f"sequence of {x.shape[0]} tokens exceeds max_len {self.pe.shape[0]}")
        return self.dropout(x + self.pe[: x.shape[0]])


class OutputProcess(nn.Module):
    """Sequence-first (n, B, latent_dim) -> (B, n, out_dim): Linear, GELU, LayerNorm(eps 1e-12), Linear."""

    def __init__(self, latent_dim: int, out_dim: int) -> None:
        super().__init__()
        # Names and eps follow MoMask's BERT-style head, kept for checkpoint compatibility.
        self.dense = nn.Linear(latent_dim, latent_dim)
        self.LayerNorm = nn.LayerNorm(latent_dim, eps=1e-12)
        self.poseFinal = nn.Linear(latent_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.LayerNorm(F.gelu(self.dense(x)))
        return self.poseFinal(x).permute(1, 0, 2)


def _transformer_encoder(cfg: MaskTransformerConfig | ResidualTransformerConfig) -> nn.TransformerEncoder:
    # PyTorch defaults as in MoMask: post-norm, sequence-first, no final norm.
    layer = nn.TransformerEncoderLayer(
        d_model=cfg.latent_dim,
        nhead=cfg.n_heads,
        dim_feedforward=cfg.ff_size,
        dropout=cfg.dropout,
        activation="gelu",
    )
    return nn.TransformerEncoder(layer, num_layers=cfg.n_layers, enable_nested_tensor=False)


def _init_weights(module: nn.Module) -> None:
    """MoMask's init: Linear/Embedding N(0, 0.02), zero bias, LayerNorm 1/0 (attention in_proj untouched)."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _drop_cond(cond: Tensor, drop_prob: float, training: bool, unconditional: bool) -> Tensor:
    """Zero the text feature: always when `unconditional`, else per sample with `drop_prob` in training."""
    if unconditional:
        return torch.zeros_like(cond)
    if training and drop_prob > 0:
        keep = torch.rand(cond.shape[0], 1, device=cond.device) >= drop_prob
        return cond * keep.to(cond.dtype)
    return cond


def _padding_mask(lengths: Tensor, n: int) -> Tensor:
    """(B, n) True at positions >= length."""
    return torch.arange(n, device=lengths.device)[None, :] >= lengths[:, None]


def _lengths(lengths: Tensor | list[int], device: torch.device) -> Tensor:
    return torch.as_tensor(lengths, dtype=torch.long, device=device)


def cosine_schedule(t: Tensor) -> Tensor:
    """Fraction of tokens masked at time t in [0, 1]: cos(π t / 2), 1 at t=0 and 0 at t=1."""
    return torch.cos(t * math.pi * 0.5)


def top_k_filter(logits: Tensor, thres: float) -> Tensor:
    """Keep the ceil((1 - thres) · V) largest logits on the last axis, -inf elsewhere (52 of 512 at 0.9)."""
    k = max(1, math.ceil((1 - thres) * logits.shape[-1]))
    values, indices = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, indices, values)


def _per_sample(generator: Generators, batch: int) -> Sequence[torch.Generator] | None:
    """The per-sample generators, or None when one generator (or the global one) serves the batch."""
    if generator is None or isinstance(generator, torch.Generator):
        return None
    if len(generator) != batch:
        raise ValueError(f"{len(generator)} generators for a batch of {batch}")
    return generator


def _draw_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """A fresh generator seeded by one draw from `generator`.

    Each sampling step takes exactly one number from a sample's own generator, however long the padded
    batch is, so what a sample draws later does not depend on the lengths of the others in its batch.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(device=device).manual_seed(seed)


def _gumbel_argmax(logits: Tensor, temperature: float, generator: Generators) -> Tensor:
    per_sample = _per_sample(generator, logits.shape[0])
    if per_sample is None:
        uniform = torch.rand(logits.shape, device=logits.device, generator=generator)  # type: ignore[arg-type]
    else:
        uniform = torch.stack(
            [
                torch.rand(
                    logits.shape[1:], device=logits.device, generator=_draw_generator(g, logits.device)
                )
                for g in per_sample
            ]
        )
    gumbel = -torch.log((-torch.log(uniform.clamp(min=1e-20))).clamp(min=1e-20))
    return (logits / max(temperature, 1e-10) + gumbel).argmax(-1)


def _categorical(logits: Tensor, temperature: float, generator: Generators) -> Tensor:
    if temperature <= 0:
        raise ValueError("temperature must be > 0 for categorical sampling (use gumbel=True for near-greedy)")
    probs = F.softmax(logits / temperature, dim=-1)
    per_sample = _per_sample(generator, probs.shape[0])
    if per_sample is None:
        flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)  # type: ignore[arg-type]
        return flat.view(probs.shape[:-1])
    rows = [
        torch.multinomial(p.reshape(-1, p.shape[-1]), 1, generator=_draw_generator(g, probs.device))
        for p, g in zip(probs, per_sample, strict=True)
    ]
    return torch.stack(rows).view(probs.shape[:-1])


def _accuracy(logits: Tensor, labels: Tensor, ignore_index: int) -> Tensor:
    counted = labels != ignore_index
    correct = (logits.argmax(-1) == labels) & counted
    return correct.sum().float() / counted.sum().clamp(min=1).float()


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Run in eval mode (no dropout, no condition dropout), then restore the previous mode."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


# ----------------------------------------------------------------------------- masked transformer


class MaskTransformer(nn.Module):
    """Bidirectional transformer over base-layer tokens with [MASK], conditioned by one text token.

    ids (B, n) in [0, num_tokens) plus mask_id = num_tokens and pad_id = num_tokens + 1 ->
    logits (B, n, num_tokens) over the real codes. Sequence fed to the encoder: [cond ; tokens].
    """

    def __init__(self, cfg: MaskTransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mask_id = cfg.mask_id
        self.pad_id = cfg.pad_id
        self.token_emb = nn.Embedding(cfg.num_tokens + 2, cfg.code_dim)  # learned, not the RVQ codebook
        self.input_process = InputProcess(cfg.code_dim, cfg.latent_dim)
        self.position_enc = PositionalEncoding(cfg.latent_dim, cfg.dropout, cfg.max_len)
        self.seqTransEncoder = _transformer_encoder(cfg)  # MoMask's name, kept for checkpoint compatibility
        self.cond_emb = nn.Linear(cfg.cond_dim, cfg.latent_dim)
        self.output_process = OutputProcess(cfg.latent_dim, cfg.num_tokens)
        self.apply(_init_weights)

    def logits(self, ids: Tensor, cond: Tensor, padding_mask: Tensor, unconditional: bool = False) -> Tensor:
        """ids (B, n), cond (B, cond_dim), padding_mask (B, n) -> logits (B, n, num_tokens)."""
        cond = _drop_cond(cond, self.cfg.cond_drop_prob, self.training, unconditional)
        x = self.position_enc(self.input_process(self.token_emb(ids)))
        # The condition token is prepended after the positional encoding: it gets no position.
        sequence = torch.cat([self.cond_emb(cond).unsqueeze(0), x], dim=0)
        key_padding = torch.cat([padding_mask.new_zeros(padding_mask.shape[0], 1), padding_mask], dim=1)
        out = self.seqTransEncoder(sequence, src_key_padding_mask=key_padding)
        return self.output_process(out[1:])

    def guided_logits(self, ids: Tensor, cond: Tensor, padding_mask: Tensor, cond_scale: float) -> Tensor:
        """Classifier-free guidance u + (c - u) · cond_scale (u: zero text feature); one pass at scale 1."""
        conditional = self.logits(ids, cond, padding_mask)
        if cond_scale == 1:
            return conditional
        unconditional = self.logits(ids, cond, padding_mask, unconditional=True)
        return unconditional + (conditional - unconditional) * cond_scale

    def corrupt(self, ids: Tensor, lengths: Tensor | list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """The training corruption: ids (B, n), lengths (B,) in tokens -> (inputs (B, n), labels (B, n) with
        mask_id where no loss is taken, padding_mask (B, n))."""
        batch, n = ids.shape
        padding_mask = _padding_mask(_lengths(lengths, ids.device), n)
        ids = torch.where(padding_mask, self.pad_id, ids)

        # Mask count from the PADDED length n, then intersected with the real tokens (MoMask's behaviour:
        # a short sample can get no masked token in a draw).
        ratio = cosine_schedule(torch.rand(batch, device=ids.device))
        num_masked = torch.round(ratio * n).clamp(min=1)
        ranks = torch.rand(batch, n, device=ids.device).argsort(-1)
        masked = (ranks < num_masked[:, None]) & ~padding_mask
        labels = torch.where(masked, ids, self.mask_id)

        # BERT corruption of the masked positions: 10 % random id, then 88 % of the rest [MASK], else kept.
        random_id = (torch.rand(batch, n, device=ids.device) < 0.1) & masked
        inputs = torch.where(random_id, torch.randint_like(ids, self.cfg.num_tokens), ids)
        mask_token = (torch.rand(batch, n, device=ids.device) < 0.88) & masked & ~random_id
        inputs = torch.where(mask_token, self.mask_id, inputs)
        return inputs, labels, padding_mask

    def forward(self, ids: Tensor, cond: Tensor, lengths: Tensor | list[int]) -> tuple[Tensor, Tensor]:
        """Masked-token training objective: ids (B, n) base-layer codes, cond (B, cond_dim), lengths (B,) in
        tokens -> (cross-entropy on the masked positions, top-1 accuracy there)."""
        inputs, labels, padding_mask = self.corrupt(ids, lengths)
        logits = self.logits(inputs, cond, padding_mask)
        loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=self.mask_id)
        return loss, _accuracy(logits.detach(), labels, self.mask_id)

    @torch.no_grad()
    def generate(
        self,
        cond: Tensor,
        token_lengths: Tensor | list[int],
        timesteps: int = 10,
        cond_scale: float = 4.0,
        temperature: float = 1.0,
        topk_filter_thres: float = 0.9,
        gumbel: bool = False,
        generator: Generators = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> Tensor:
        """Iterative decoding of the base layer: cond (B, cond_dim), token_lengths (B,) -> ids
        (B, max length), -1 beyond each length.

        Step 0 predicts every token; each later step re-masks the least confident of the tokens predicted in
        the previous step (a cosine schedule over each sample's own length) and predicts them again.
        Logits go: guidance -> `logits_processor` -> top-k -> temperature -> sample. The confidence that
        ranks tokens is the softmax of the processed logits (before top-k and temperature)."""
        if timesteps < 1:
            raise ValueError("timesteps must be >= 1")
        lengths = _lengths(token_lengths, cond.device)
        n = int(lengths.max())
        padding_mask = _padding_mask(lengths, n)
        ids = torch.where(padding_mask, self.pad_id, self.mask_id)
        scores = torch.where(padding_mask, 1e5, 0.0)
        with _eval_mode(self):
            for step, t in enumerate(torch.linspace(0, 1, timesteps, device=cond.device)):
                num_masked = torch.round(cosine_schedule(t) * lengths).clamp(min=1)
                # Kept tokens and pads score 1e5, so only last step's predictions can be re-masked.
                ranks = scores.argsort(dim=1).argsort(dim=1)
                is_mask = ranks < num_masked[:, None]
                ids = torch.where(is_mask, self.mask_id, ids)

                logits = self.guided_logits(ids, cond, padding_mask, cond_scale)
                if logits_processor is not None:
                    info = SamplingStep(
                        layer=0, step=step, num_steps=timesteps, ids=ids, padding_mask=padding_mask
                    )
                    logits = logits_processor(logits, info)
                filtered = top_k_filter(logits, topk_filter_thres)
                if gumbel:
                    predicted = _gumbel_argmax(filtered, temperature, generator)
                else:
                    predicted = _categorical(filtered, temperature, generator)
                ids = torch.where(is_mask, predicted, ids)

                # Confidence: probability of the sampled id under the logits before top-k and temperature.
                confidence = F.softmax(logits, dim=-1).gather(-1, predicted.unsqueeze(-1)).squeeze(-1)
                scores = confidence.masked_fill(~is_mask, 1e5)
        return torch.where(padding_mask, -1, ids)


# ----------------------------------------------------------------------------- residual transformer


class ResidualTransformer(nn.Module):
    """Predicts RVQ layer q (1 <= q < Q) from the summed embeddings of layers 0..q-1, the text and q.

    history (B, n, code_dim) -> logits (B, n, num_tokens + 1); the extra class is pad_id = num_tokens.
    Sequence fed to the encoder: [cond ; quant_emb(one_hot(q)) ; tokens].
    """

    def __init__(self, cfg: ResidualTransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_id = cfg.pad_id
        vocab, dim, layers = cfg.num_tokens + 1, cfg.code_dim, cfg.num_quantizers - 1
        if cfg.share_weight:
            # Released scheme: embed_proj_shared_weight[j-1] both embeds and predicts layer j (j = 1..Q-2);
            # layer 0 has its own embedding, layer Q-1 its own projection. Names kept for checkpoints.
            self.embed_proj_shared_weight = nn.Parameter(torch.randn(layers - 1, vocab, dim) * 0.02)
            self.token_embed_weight_ = nn.Parameter(torch.randn(1, vocab, dim) * 0.02)
            self.output_proj_weight_ = nn.Parameter(torch.randn(1, vocab, dim) * 0.02)
            self.register_parameter("output_proj_bias", None)
        else:
            self.token_embed_weight = nn.Parameter(torch.randn(layers, vocab, dim) * 0.02)
            self.output_proj_weight = nn.Parameter(torch.randn(layers, vocab, dim) * 0.02)
            # Shape (Q, vocab) as in MoMask; row q-1 is used for layer q (the last row is unused).
            self.output_proj_bias = nn.Parameter(torch.zeros(cfg.num_quantizers, vocab))
        self.input_process = InputProcess(cfg.code_dim, cfg.latent_dim)
        self.position_enc = PositionalEncoding(cfg.latent_dim, cfg.dropout, cfg.max_len)
        self.seqTransEncoder = _transformer_encoder(cfg)  # MoMask's name, kept for checkpoint compatibility
        self.quant_emb = nn.Linear(cfg.num_quantizers, cfg.latent_dim)
        self.cond_emb = nn.Linear(cfg.cond_dim, cfg.latent_dim)
        self.output_process = OutputProcess(cfg.latent_dim, cfg.code_dim)
        self.apply(_init_weights)

    output_proj_bias: nn.Parameter | None

    def token_embedding(self, layer: int) -> Tensor:
        """(num_tokens + 1, code_dim) matrix embedding the ids of RVQ layer `layer` (0..Q-2); a view."""
        if not 0 <= layer < self.cfg.num_quantizers - 1:
            raise ValueError(f"no token embedding for layer {layer}")
        if not self.cfg.share_weight:
            return self.token_embed_weight[layer]
        return self.token_embed_weight_[0] if layer == 0 else self.embed_proj_shared_weight[layer - 1]

    def output_projection(self, layer: int) -> Tensor:
        """(num_tokens + 1, code_dim) matrix predicting the ids of RVQ layer `layer` (1..Q-1); a view."""
        if not 1 <= layer < self.cfg.num_quantizers:
            raise ValueError(f"no output projection for layer {layer}")
        if not self.cfg.share_weight:
            return self.output_proj_weight[layer - 1]
        last = layer == self.cfg.num_quantizers - 1
        return self.output_proj_weight_[0] if last else self.embed_proj_shared_weight[layer - 1]

    def token_embeddings(self) -> Tensor:
        """(Q-1, num_tokens + 1, code_dim): row j embeds layer j."""
        if not self.cfg.share_weight:
            return self.token_embed_weight
        return torch.cat([self.token_embed_weight_, self.embed_proj_shared_weight], dim=0)

    def output_projections(self) -> Tensor:
        """(Q-1, num_tokens + 1, code_dim): row q-1 predicts layer q."""
        if not self.cfg.share_weight:
            return self.output_proj_weight
        return torch.cat([self.embed_proj_shared_weight, self.output_proj_weight_], dim=0)

    def logits(
        self, history: Tensor, q: Tensor, cond: Tensor, padding_mask: Tensor, unconditional: bool = False
    ) -> Tensor:
        """history (B, n, code_dim), q (B,) layers to predict, cond (B, cond_dim), padding_mask (B, n)
        -> logits (B, n, num_tokens + 1)."""
        cond = _drop_cond(cond, self.cfg.cond_drop_prob, self.training, unconditional)
        x = self.position_enc(self.input_process(history))
        q_token = self.quant_emb(F.one_hot(q, self.cfg.num_quantizers).to(x.dtype)).unsqueeze(0)
        sequence = torch.cat([self.cond_emb(cond).unsqueeze(0), q_token, x], dim=0)
        key_padding = torch.cat([padding_mask.new_zeros(padding_mask.shape[0], 2), padding_mask], dim=1)
        features = self.output_process(self.seqTransEncoder(sequence, src_key_padding_mask=key_padding)[2:])
        if bool((q == q[0]).all()):  # one layer for the whole batch (always in generate): no per-sample copy
            layer = int(q[0])
            logits = features @ self.output_projection(layer).t()
            bias = None if self.output_proj_bias is None else self.output_proj_bias[layer - 1]
        else:
            logits = torch.einsum("bnc,bvc->bnv", features, self.output_projections()[q - 1])
            bias = None if self.output_proj_bias is None else self.output_proj_bias[q - 1].unsqueeze(1)
        return logits if bias is None else logits + bias

    def guided_logits(
        self, history: Tensor, q: Tensor, cond: Tensor, padding_mask: Tensor, cond_scale: float
    ) -> Tensor:
        """Classifier-free guidance as in `MaskTransformer.guided_logits`."""
        conditional = self.logits(history, q, cond, padding_mask)
        if cond_scale == 1:
            return conditional
        unconditional = self.logits(history, q, cond, padding_mask, unconditional=True)
        return unconditional + (conditional - unconditional) * cond_scale

    def forward(self, codes: Tensor, cond: Tensor, lengths: Tensor | list[int]) -> tuple[Tensor, Tensor]:
        """Training objective: codes (B, n, Q) from `ResidualVQVAE.encode`, cond (B, cond_dim), lengths (B,)
        in tokens -> (cross-entropy on layer q's ids, accuracy), with one q per sample skewed toward 1."""
        batch, n, num_layers = codes.shape
        if num_layers != self.cfg.num_quantizers:
            raise ValueError(f"codes have {num_layers} layers, expected {self.cfg.num_quantizers}")
        padding_mask = _padding_mask(_lengths(lengths, codes.device), n)
        ids = torch.where(padding_mask.unsqueeze(-1) | (codes < 0), self.pad_id, codes)

        u = torch.rand(batch, device=codes.device)
        q = torch.round((1 - cosine_schedule(u)) * (num_layers - 2)).long() + 1  # in 1..Q-1, mostly small

        # history = sum over layers j < q of layer j's embedding of its ids.
        weights = self.token_embeddings()
        embedded = torch.stack([F.embedding(ids[..., j], weights[j]) for j in range(num_layers - 1)], dim=2)
        below_q = torch.arange(num_layers - 1, device=codes.device)[None, :] < q[:, None]  # (B, Q-1)
        history = (embedded * below_q[:, None, :, None].to(embedded.dtype)).sum(2)
        labels = ids.gather(2, q.view(batch, 1, 1).expand(batch, n, 1)).squeeze(-1)

        logits = self.logits(history, q, cond, padding_mask)
        loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=self.pad_id)
        return loss, _accuracy(logits.detach(), labels, self.pad_id)

    @torch.no_grad()
    def generate(
        self,
        base_ids: Tensor,
        cond: Tensor,
        token_lengths: Tensor | list[int],
        cond_scale: float = 5.0,
        temperature: float = 1.0,
        topk_filter_thres: float = 0.9,
        generator: Generators = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> Tensor:
        """Layers 1..Q-1 in one shot each: base_ids (B, n) (-1 = pad) -> codes (B, n, Q), -1 at pads.

        Sampling is Gumbel-argmax over the top-k of num_tokens + 1 classes; as in MoMask, a sampled pad_id
        inside the length is kept and returned as -1 (no code in that layer)."""
        lengths = _lengths(token_lengths, cond.device)
        batch, n = base_ids.shape
        padding_mask = _padding_mask(lengths, n)
        ids = torch.where(padding_mask | (base_ids < 0), self.pad_id, base_ids)
        all_ids = [ids]
        history = torch.zeros(
            batch, n, self.cfg.code_dim, device=cond.device, dtype=self.token_embedding(0).dtype
        )
        with _eval_mode(self):
            for layer in range(1, self.cfg.num_quantizers):
                history = history + F.embedding(ids, self.token_embedding(layer - 1))
                q = torch.full((batch,), layer, dtype=torch.long, device=cond.device)
                logits = self.guided_logits(history, q, cond, padding_mask, cond_scale)
                if logits_processor is not None:
                    info = SamplingStep(layer=layer, step=0, num_steps=1, ids=ids, padding_mask=padding_mask)
                    logits = logits_processor(logits, info)
                predicted = _gumbel_argmax(top_k_filter(logits, topk_filter_thres), temperature, generator)
                ids = torch.where(padding_mask, self.pad_id, predicted)
                all_ids.append(ids)
        codes = torch.stack(all_ids, dim=-1)
        return torch.where(codes == self.pad_id, -1, codes)
