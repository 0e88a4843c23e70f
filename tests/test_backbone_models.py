"""The backbone modules: published parameter counts, configs, and behaviour at a tiny size."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmark.backbone import (
    BackboneConfig,
    LengthEstimator,
    LengthEstimatorConfig,
    MaskTransformer,
    MaskTransformerConfig,
    ResidualTransformer,
    ResidualTransformerConfig,
    ResidualVQVAE,
    RVQConfig,
    SamplingStep,
    reconstruction_loss,
)

# Tiny sizes keep every test fast; the structure (6 layers, x4 down-sampling, 2 prefix tokens) is unchanged.
TINY_RVQ = dataclasses.replace(RVQConfig.small(), width=32, code_dim=16, nb_code=32)
TINY_MASK = dataclasses.replace(
    MaskTransformerConfig.small(),
    num_tokens=32,
    code_dim=16,
    latent_dim=32,
    ff_size=64,
    n_layers=2,
    n_heads=2,
    dropout=0.0,
    cond_dim=8,
    cond_drop_prob=0.0,
)
TINY_RESIDUAL = dataclasses.replace(
    ResidualTransformerConfig.small(),
    num_tokens=32,
    code_dim=16,
    latent_dim=32,
    ff_size=64,
    n_layers=2,
    n_heads=2,
    dropout=0.0,
    cond_dim=8,
    cond_drop_prob=0.0,
)


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- sizes and configs


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: ResidualVQVAE(RVQConfig.published()), 19_436_807),  # codebook buffers excluded
        (lambda: MaskTransformer(MaskTransformerConfig.published()), 12_048_768),
        (lambda: ResidualTransformer(ResidualTransformerConfig.published()), 13_364_224),
        (lambda: LengthEstimator(LengthEstimatorConfig.published()), 435_122),
    ],
    ids=["rvq", "mask", "residual", "length"],
)
def test_published_parameter_counts(build, expected: int) -> None:
    assert _num_params(build()) == expected


def test_published_codebooks_are_buffers() -> None:
    vq = ResidualVQVAE(RVQConfig.published())
    assert [tuple(c.shape) for c in vq.codebooks] == [(512, 512)] * 6
    assert not any("codebook" in name for name, _ in vq.named_parameters())


def test_small_configs_fit_together_and_are_small() -> None:
    cfg = BackboneConfig.small()
    sizes = [
        _num_params(ResidualVQVAE(cfg.rvq)),
        _num_params(MaskTransformer(cfg.mask)),
        _num_params(ResidualTransformer(cfg.residual)),
        _num_params(LengthEstimator(cfg.length)),
    ]
    assert all(100_000 <= size <= 2_000_000 for size in sizes), sizes
    assert cfg.mask.cond_dim == 384  # MiniLM
    assert BackboneConfig.published().mask.cond_dim == 512  # CLIP


def test_config_dicts_round_trip_and_are_strict() -> None:
    cfg = BackboneConfig.small()
    assert BackboneConfig.from_dict(cfg.to_dict()) == cfg
    assert RVQConfig.from_dict(RVQConfig.published().to_dict()) == RVQConfig.published()
    data = RVQConfig.small().to_dict()
    with pytest.raises(ValueError, match="codebook_size"):
        RVQConfig.from_dict({**data, "codebook_size": 3})
    with pytest.raises(ValueError, match="nb_code"):
        RVQConfig.from_dict({k: v for k, v in data.items() if k != "nb_code"})
    with pytest.raises(ValueError, match="width"):
        RVQConfig.from_dict({**data, "width": "wide"})
    loaded = RVQConfig.from_dict({**data, "dropout": 0})  # an int is accepted for a float field
    assert loaded.dropout == 0.0 and isinstance(loaded.dropout, float)
    with pytest.raises(ValueError, match="n_heads"):
        MaskTransformerConfig(latent_dim=30, n_heads=4)
    with pytest.raises(ValueError, match="num_tokens"):
        small = BackboneConfig.small()
        BackboneConfig(small.rvq, MaskTransformerConfig.published(), small.residual, small.length)


# ----------------------------------------------------------------------------- RVQ-VAE


def test_rvq_encode_decode_shapes() -> None:
    vq = ResidualVQVAE(TINY_RVQ).eval()
    motion = torch.randn(3, 40, 263)
    codes = vq.encode(motion)
    assert codes.shape == (3, 10, 6) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < TINY_RVQ.nb_code
    assert vq.decode(codes).shape == (3, 40, 263)
    recon, commit, perplexity = vq(motion)
    assert recon.shape == (3, 40, 263) and commit.ndim == 0 and perplexity.ndim == 0


def test_rvq_minus_one_codes_add_nothing() -> None:
    vq = ResidualVQVAE(TINY_RVQ)
    vq.train()(torch.randn(4, 32, 263))  # initialise the codebooks from data
    vq.eval()
    codes = vq.encode(torch.randn(2, 32, 263))
    dropped = codes.clone()
    dropped[..., 3:] = -1
    torch.testing.assert_close(vq.decode(dropped), vq.decode(codes[..., :3]))
    nothing = torch.full_like(codes, -1)
    zero_latent = torch.zeros(2, TINY_RVQ.code_dim, codes.shape[1])
    torch.testing.assert_close(vq.decode(nothing), vq.decoder(zero_latent).permute(0, 2, 1))


def test_rvq_codebook_init_and_dead_code_reset_in_training() -> None:
    torch.manual_seed(0)
    vq = ResidualVQVAE(dataclasses.replace(TINY_RVQ, quantize_dropout_prob=0.0))
    motion = torch.randn(4, 32, 263)
    vq.eval()(motion)
    assert not vq.quantizer.layers[0].initialized and vq.codebooks[0].abs().sum() == 0  # eval does not init

    vq.train()(motion)
    layer = vq.quantizer.layers[0]
    assert layer.initialized and vq.codebooks[0].abs().sum() > 0
    assert all(q.initialized for q in vq.quantizer.layers)

    # Code 5 is far from every vector (never chosen) and its EMA count is below 1: it must be reset.
    with torch.no_grad():
        layer.codebook[5] = 1e3
        layer.code_count[5] = 0.5
    vq(motion)
    assert vq.codebooks[0][5].abs().max() < 100
    # Used codes move to the EMA mean; the codebook never receives a gradient.
    assert not vq.codebooks[0].requires_grad


def test_rvq_quantize_dropout_keeps_a_prefix_with_layer_zero() -> None:
    torch.manual_seed(0)
    vq = ResidualVQVAE(dataclasses.replace(TINY_RVQ, quantize_dropout_prob=1.0)).train()
    latent = vq.encoder(torch.randn(2, 16, 263).permute(0, 2, 1))
    active_counts = set()
    for _ in range(40):
        _, indices, _, _ = vq.quantizer(latent.detach(), 0.5)
        active = (indices >= 0).all(dim=(0, 1))  # per layer
        assert active[0]
        count = int(active.sum())
        assert active[:count].all() and not active[count:].any()  # layers 0..k, then -1
        active_counts.add(count)
    assert len(active_counts) > 2


def test_rvq_eval_encoding_is_deterministic_argmin() -> None:
    vq = ResidualVQVAE(TINY_RVQ)
    vq.train()(torch.randn(4, 32, 263))
    vq.eval()
    motion = torch.randn(2, 32, 263)
    first = vq.encode(motion)
    assert torch.equal(first, vq.encode(motion))
    _, indices, _, _ = vq.quantizer(vq.encoder(motion.permute(0, 2, 1)))
    assert torch.equal(first, indices)
    torch.testing.assert_close(vq(motion)[0], vq(motion)[0])


def test_rvq_codes_are_float32_under_autocast() -> None:
    """Mixed-precision training (bfloat16 autocast) must not change which codes the quantizer picks: its
    distances and EMA statistics stay float32 (checked on CPU autocast, which lowers matmuls the same way)."""
    vq = ResidualVQVAE(dataclasses.replace(TINY_RVQ, nb_code=512, code_dim=64))
    vq.train()(torch.randn(8, 32, 263))
    vq.eval()
    latent = vq.encoder(torch.randn(8, 64, 263).permute(0, 2, 1))
    expected = vq.quantizer.quantize(latent)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(vq.quantizer.quantize(latent), expected)
        _, indices, _, _ = vq.quantizer(latent)
        assert torch.equal(indices, expected)
        quantized = vq.quantizer(latent)[0]
    assert quantized.dtype == torch.float32
    # Without the guard, bfloat16 distances pick other codes for some positions (what the guard prevents).
    with torch.autocast("cpu", dtype=torch.bfloat16):
        flat = latent.permute(0, 2, 1).reshape(-1, latent.shape[1])
        codebook = vq.quantizer.layers[0].codebook
        distance = flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(-1)
        lowered = distance.argmin(-1)
    assert not torch.equal(lowered, expected[..., 0].reshape(-1))


def test_rvq_codebook_edits_change_decoding_and_loading_marks_initialised() -> None:
    vq = ResidualVQVAE(TINY_RVQ)
    vq.train()(torch.randn(4, 32, 263))
    vq.eval()
    codes = torch.zeros(1, 4, 6, dtype=torch.long)
    before = vq.decode(codes)
    assert vq.codebooks[0].data_ptr() == vq.quantizer.layers[0].codebook.data_ptr()
    with torch.no_grad():
        vq.codebooks[0][0] += 1.0  # what Latent Code Replacement does
    assert not torch.allclose(before, vq.decode(codes))

    fresh = ResidualVQVAE(TINY_RVQ)
    fresh.load_state_dict(vq.state_dict())
    assert all(layer.initialized for layer in fresh.quantizer.layers)
    assert torch.equal(fresh.codebooks[2], vq.codebooks[2])


def test_rvq_loss_backpropagates_to_the_encoder() -> None:
    vq = ResidualVQVAE(TINY_RVQ).train()
    motion = torch.randn(2, 32, 263)
    recon, commit, _ = vq(motion)
    reconstruction_loss(recon, motion, commit, TINY_RVQ).backward()
    assert vq.encoder.model[0].weight.grad is not None and vq.encoder.model[0].weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- masked transformer


def _overfit(model: torch.nn.Module, batch: tuple, steps: int = 50, lr: float = 3e-3) -> tuple[float, float]:
    """Loss on one batch before and after `steps` AdamW steps on it, each averaged over 20 draws of the
    objective's own randomness (masks, layer q), so the comparison is not at the mercy of one draw."""

    def mean_loss() -> float:
        with torch.no_grad():
            return sum(model(*batch)[0].item() for _ in range(20)) / 20

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    before = mean_loss()
    for _ in range(steps):
        loss, _ = model(*batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return before, mean_loss()


def test_mask_transformer_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = MaskTransformer(TINY_MASK)
    ids = torch.randint(0, TINY_MASK.num_tokens, (4, 8))
    batch = (ids, torch.randn(4, TINY_MASK.cond_dim), torch.tensor([8, 6, 8, 5]))
    first, last = _overfit(model, batch)
    assert last < 0.6 * first, (first, last)


def test_mask_transformer_generate() -> None:
    torch.manual_seed(0)
    model = MaskTransformer(TINY_MASK).train()
    cond = torch.randn(3, TINY_MASK.cond_dim)
    lengths = torch.tensor([7, 3, 5])
    ids = model.generate(cond, lengths, timesteps=5, generator=torch.Generator().manual_seed(1))
    assert model.training  # restored
    assert ids.shape == (3, 7)
    inside = torch.arange(7)[None, :] < lengths[:, None]
    assert ((ids[inside] >= 0) & (ids[inside] < TINY_MASK.num_tokens)).all()
    assert (ids[~inside] == -1).all()
    again = model.generate(cond, lengths, timesteps=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ids, again)
    gumbel = model.generate(cond, lengths, gumbel=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(
        gumbel, model.generate(cond, lengths, gumbel=True, generator=torch.Generator().manual_seed(1))
    )
    assert model.generate(cond, [2, 2, 1], timesteps=1).shape == (3, 2)


@pytest.mark.parametrize(("cond_scale", "passes_per_step"), [(1.0, 1), (4.0, 2)])
def test_mask_transformer_passes_per_step(cond_scale: float, passes_per_step: int) -> None:
    model = MaskTransformer(TINY_MASK)
    calls: list[int] = []
    model.seqTransEncoder.register_forward_hook(lambda *_: calls.append(1))
    model.generate(torch.randn(2, TINY_MASK.cond_dim), [4, 6], timesteps=6, cond_scale=cond_scale)
    assert len(calls) == 6 * passes_per_step


def test_mask_transformer_unconditional_is_a_zero_text_feature() -> None:
    model = MaskTransformer(TINY_MASK).eval()
    ids = torch.randint(0, TINY_MASK.num_tokens, (2, 5))
    pad = torch.zeros(2, 5, dtype=torch.bool)
    cond = torch.randn(2, TINY_MASK.cond_dim)
    torch.testing.assert_close(
        model.logits(ids, cond, pad, unconditional=True), model.logits(ids, torch.zeros_like(cond), pad)
    )
    torch.testing.assert_close(model.guided_logits(ids, cond, pad, 1.0), model.logits(ids, cond, pad))


@pytest.mark.parametrize("gumbel", [False, True])
def test_mask_transformer_logits_processor_can_forbid_tokens(gumbel: bool) -> None:
    torch.manual_seed(0)
    model = MaskTransformer(TINY_MASK)
    steps: list[SamplingStep] = []

    def forbid_even(logits: torch.Tensor, step: SamplingStep) -> torch.Tensor:
        steps.append(step)
        logits = logits.clone()
        logits[..., 0::2] = float("-inf")
        return logits

    cond = torch.randn(4, TINY_MASK.cond_dim)
    lengths = [9, 9, 4, 6]
    # topk_filter_thres 0 keeps every token, so without the hook even ids would surely appear.
    free = model.generate(cond, lengths, timesteps=4, topk_filter_thres=0.0, gumbel=gumbel)
    assert (free[free >= 0] % 2 == 0).any()
    ids = model.generate(
        cond, lengths, timesteps=4, topk_filter_thres=0.0, gumbel=gumbel, logits_processor=forbid_even
    )
    assert (ids[ids >= 0] % 2 == 1).all()
    assert [s.step for s in steps] == [0, 1, 2, 3] and all(s.layer == 0 and s.num_steps == 4 for s in steps)


# ----------------------------------------------------------------------------- residual transformer


def test_residual_transformer_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = ResidualTransformer(TINY_RESIDUAL)
    codes = torch.randint(0, TINY_RESIDUAL.num_tokens, (4, 8, 6))
    batch = (codes, torch.randn(4, TINY_RESIDUAL.cond_dim), torch.tensor([8, 6, 8, 5]))
    first, last = _overfit(model, batch, steps=150)  # slower: one random layer q per sample and step
    assert last < 0.7 * first, (first, last)


def test_residual_transformer_generate() -> None:
    torch.manual_seed(0)
    model = ResidualTransformer(TINY_RESIDUAL)
    cond = torch.randn(3, TINY_RESIDUAL.cond_dim)
    lengths = torch.tensor([6, 2, 4])
    base = torch.randint(0, TINY_RESIDUAL.num_tokens, (3, 6))
    base[torch.arange(6)[None, :] >= lengths[:, None]] = -1
    calls: list[int] = []
    model.seqTransEncoder.register_forward_hook(lambda *_: calls.append(1))

    codes = model.generate(base, cond, lengths, generator=torch.Generator().manual_seed(3))
    assert codes.shape == (3, 6, 6) and len(calls) == 2 * 5  # guided: two passes per layer
    assert torch.equal(codes[..., 0], base)
    inside = torch.arange(6)[None, :] < lengths[:, None]
    assert (codes[~inside] == -1).all()
    assert ((codes[inside] >= -1) & (codes[inside] < TINY_RESIDUAL.num_tokens)).all()  # pad_id -> -1
    assert torch.equal(codes, model.generate(base, cond, lengths, generator=torch.Generator().manual_seed(3)))

    calls.clear()
    seen: list[SamplingStep] = []

    def no_pad_no_even(logits: torch.Tensor, step: SamplingStep) -> torch.Tensor:
        seen.append(step)
        logits = logits.clone()
        logits[..., TINY_RESIDUAL.pad_id] = float("-inf")
        logits[..., 0 : TINY_RESIDUAL.num_tokens : 2] = float("-inf")
        return logits

    codes = model.generate(
        base, cond, lengths, cond_scale=1.0, topk_filter_thres=0.0, logits_processor=no_pad_no_even
    )
    assert len(calls) == 5  # one pass per layer without guidance
    assert (codes[..., 1:][inside] % 2 == 1).all()
    assert [s.layer for s in seen] == [1, 2, 3, 4, 5]


def test_residual_transformer_shared_weights_are_tied() -> None:
    model = ResidualTransformer(TINY_RESIDUAL)
    q = TINY_RESIDUAL.num_quantizers
    for j in range(1, q - 1):  # layers embedded and predicted by the same matrix
        assert model.token_embedding(j).data_ptr() == model.output_projection(j).data_ptr()
    assert model.token_embedding(0).data_ptr() != model.output_projection(1).data_ptr()
    assert model.output_projection(q - 1).data_ptr() != model.token_embedding(q - 2).data_ptr()
    torch.testing.assert_close(model.token_embeddings()[1:], model.output_projections()[:-1])
    names = {name for name, _ in model.named_parameters()}
    assert {"embed_proj_shared_weight", "token_embed_weight_", "output_proj_weight_"} <= names
    assert "output_proj_bias" not in names


def test_residual_transformer_without_shared_weights() -> None:
    cfg = dataclasses.replace(TINY_RESIDUAL, share_weight=False)
    model = ResidualTransformer(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    vocab = cfg.num_tokens + 1
    assert shapes["token_embed_weight"] == (5, vocab, cfg.code_dim)
    assert shapes["output_proj_weight"] == (5, vocab, cfg.code_dim)
    assert shapes["output_proj_bias"] == (6, vocab)
    assert "embed_proj_shared_weight" not in shapes
    loss, accuracy = model(torch.randint(0, cfg.num_tokens, (2, 5, 6)), torch.randn(2, cfg.cond_dim), [5, 3])
    loss.backward()
    assert torch.isfinite(loss) and 0 <= accuracy <= 1


# ----------------------------------------------------------------------------- length estimator


def test_length_estimator_outputs_and_samples() -> None:
    model = LengthEstimator(LengthEstimatorConfig.small()).eval()
    cond = torch.randn(5, 384)
    assert model(cond).shape == (5, 50)
    lengths = model.sample(cond, generator=torch.Generator().manual_seed(0))
    assert lengths.shape == (5,) and lengths.min() >= 0 and lengths.max() < 50
    assert torch.equal(lengths, model.sample(cond, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("share_weight", [True, False])
def test_residual_logits_same_for_shared_or_per_sample_layer(share_weight: bool) -> None:
    model = ResidualTransformer(dataclasses.replace(TINY_RESIDUAL, share_weight=share_weight)).eval()
    if not share_weight:
        torch.nn.init.normal_(model.output_proj_bias)
    history = torch.randn(2, 5, TINY_RESIDUAL.code_dim)
    cond = torch.randn(2, TINY_RESIDUAL.cond_dim)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    same = model.logits(history, torch.tensor([2, 2]), cond, pad)
    mixed = model.logits(history, torch.tensor([2, 4]), cond, pad)
    torch.testing.assert_close(same[0], mixed[0])
    torch.testing.assert_close(mixed[1], model.logits(history, torch.tensor([4, 4]), cond, pad)[1])


def test_mask_transformer_corruption_follows_momask() -> None:
    torch.manual_seed(0)
    model = MaskTransformer(TINY_MASK)
    ids = torch.randint(0, TINY_MASK.num_tokens, (64, 20))
    lengths = torch.full((64,), 20)
    lengths[0] = 1
    short_sample_masked, masked_total, as_mask, unchanged = 0, 0, 0, 0
    for _ in range(20):
        inputs, labels, padding_mask = model.corrupt(ids, lengths)
        assert (inputs[padding_mask] == model.pad_id).all() and (labels[padding_mask] == model.mask_id).all()
        short_sample_masked += int((labels[0] != model.mask_id).any())
        counted = labels[1:] != model.mask_id
        assert torch.equal(labels[1:][counted], ids[1:][counted])
        masked_total += int(counted.sum())
        as_mask += int((inputs[1:][counted] == model.mask_id).sum())
        unchanged += int((inputs[1:][counted] == ids[1:][counted]).sum())
    # The count is drawn over the padded length (20), so the 1-token sample is often left unmasked.
    assert 0 < short_sample_masked < 20
    assert abs(as_mask / masked_total - 0.9 * 0.88) < 0.03
    expected_unchanged = 0.9 * 0.12 + 0.1 / TINY_MASK.num_tokens  # kept, or a random id equal to the truth
    assert abs(unchanged / masked_total - expected_unchanged) < 0.03
