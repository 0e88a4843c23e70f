"""Residual VQ-VAE: the motion tokenizer of MoMask (conv encoder, residual quantizer, conv decoder).

A motion (B, T, 263) becomes codes (B, T/4, Q): one code per 4 frames in each of Q residual layers.
Code -1 means "no code" (a dropped layer or padding) and contributes nothing when decoding.
Module names reproduce the official state-dict keys (`encoder.model.0.weight`, `quantizer.layers.0.codebook`).

    vq = ResidualVQVAE(RVQConfig.small())
    recon, commit_loss, perplexity = vq(motion)          # training step
    loss = reconstruction_loss(recon, motion, commit_loss, vq.cfg)
    codes = vq.eval().encode(motion)                     # (B, T/4, Q), deterministic
    motion = vq.decode(codes)                            # (B, 4·n, 263)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.backbone.config import RVQConfig


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[name]()


class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of (B, C, T)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _norm(name: str | None, channels: int) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name == "LN":
        return _ChannelLayerNorm(channels)
    if name == "GN":
        return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)
    return nn.BatchNorm1d(channels, eps=1e-6, affine=True)


class ResConv1DBlock(nn.Module):
    """Pre-activation residual block on (B, C, T): x + dropout(conv2(act(norm2(conv1(act(norm1(x))))))).

    conv1 is dilated (kernel 3, padding = dilation, so T is kept); conv2 is a 1x1 conv.
    """

    def __init__(
        self, channels: int, dilation: int, activation: str, norm: str | None, dropout: float
    ) -> None:
        super().__init__()
        self.norm1 = _norm(norm, channels)
        self.act1 = _activation(activation)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
        self.norm2 = _norm(norm, channels)
        self.act2 = _activation(activation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.act1(self.norm1(x)))
        h = self.conv2(self.act2(self.norm2(h)))
        return x + self.dropout(h)


class Resnet1D(nn.Module):
    """`depth` residual blocks with dilations growth**b, largest first (9, 3, 1) on (B, C, T)."""

    def __init__(self, cfg: RVQConfig) -> None:
        super().__init__()
        dilations = [cfg.dilation_growth_rate**b for b in range(cfg.depth)]
        # MoMask's reverse_dilation defaults to True and neither encoder nor decoder overrides it: 9, 3, 1.
        blocks = [
            ResConv1DBlock(cfg.width, d, cfg.activation, cfg.norm, cfg.dropout) for d in reversed(dilations)
        ]
        self.model = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """(B, input_dim, T) -> (B, code_dim, T / stride_t**down_t); indices match the official keys."""

    def __init__(self, cfg: RVQConfig) -> None:
        super().__init__()
        s = cfg.stride_t
        layers: list[nn.Module] = [nn.Conv1d(cfg.input_dim, cfg.width, 3, 1, 1), _activation(cfg.activation)]
        for _ in range(cfg.down_t):
            down = nn.Conv1d(cfg.width, cfg.width, kernel_size=2 * s, stride=s, padding=s // 2)
            layers.append(nn.Sequential(down, Resnet1D(cfg)))
        layers.append(nn.Conv1d(cfg.width, cfg.code_dim, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, code_dim, n) -> (B, input_dim, n · stride_t**down_t); no activation at the output."""

    def __init__(self, cfg: RVQConfig) -> None:
        super().__init__()
        act = cfg.activation
        layers: list[nn.Module] = [nn.Conv1d(cfg.code_dim, cfg.width, 3, 1, 1), _activation(act)]
        for _ in range(cfg.down_t):
            up = nn.Upsample(scale_factor=cfg.stride_t, mode="nearest")
            layers.append(nn.Sequential(Resnet1D(cfg), up, nn.Conv1d(cfg.width, cfg.width, 3, 1, 1)))
        layers += [nn.Conv1d(cfg.width, cfg.width, 3, 1, 1), _activation(act)]
        layers.append(nn.Conv1d(cfg.width, cfg.input_dim, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _tile(x: Tensor, rows: int) -> Tensor:
    """At least `rows` rows of x (N, D): x itself, or x repeated plus N(0, (0.01/sqrt(D))²) noise."""
    n, dim = x.shape
    if n >= rows:
        return x
    repeated = x.repeat((rows + n - 1) // n, 1)
    return repeated + torch.randn_like(repeated) * (0.01 / math.sqrt(dim))


class QuantizeEMAReset(nn.Module):
    """One quantizer layer: nearest code (Gumbel-sampled in training), EMA codebook with dead-code reset.

    The codebook (nb_code, code_dim) is a buffer, never trained by gradient. It is filled from the first
    training batch; afterwards each training batch moves used codes to the EMA mean of the vectors they
    quantize and resets codes whose EMA count fell below 1 to random vectors of the batch.
    """

    def __init__(self, nb_code: int, code_dim: int, mu: float) -> None:
        super().__init__()
        self.nb_code = nb_code
        self.code_dim = code_dim
        self.mu = mu
        self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        # EMA statistics are not in the official state dict, so they are non-persistent buffers.
        self.register_buffer("code_sum", torch.zeros(nb_code, code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(nb_code), persistent=False)
        self.initialized = False
        """True once the codebook holds data: after the first training batch or after loading a state dict."""

    codebook: Tensor
    code_sum: Tensor
    code_count: Tensor

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # Deliberate deviation: MoMask would re-initialise a loaded codebook from the next training batch;
        # here a loaded codebook counts as initialised, with EMA statistics as after a data init.
        if prefix + "codebook" in state_dict:
            self._start_ema(self.codebook)

    @torch.no_grad()
    def _start_ema(self, codebook: Tensor) -> None:
        self.codebook.copy_(codebook)
        self.code_sum.copy_(codebook)
        self.code_count.fill_(1.0)
        self.initialized = True

    @torch.no_grad()
    def _init_codebook(self, x: Tensor) -> None:
        # The first nb_code vectors of the (tiled) batch, not a random subset, as in MoMask.
        self._start_ema(_tile(x, self.nb_code)[: self.nb_code])

    def select(self, x: Tensor, temperature: float = 0.0) -> Tensor:
        """Code index (N,) of each row of x (N, code_dim): argmin of the squared L2 distance, or with
        temperature > 0, argmax(-distance / temperature + Gumbel noise)."""
        distance = (
            x.pow(2).sum(-1, keepdim=True) - 2 * x @ self.codebook.t() + self.codebook.pow(2).sum(-1)[None, :]
        )
        if temperature > 0:
            uniform = torch.rand_like(distance).clamp(min=1e-20)
            gumbel = -torch.log((-torch.log(uniform)).clamp(min=1e-20))
            return (-distance / temperature + gumbel).argmax(-1)
        return distance.argmin(-1)

    @torch.no_grad()
    def _update_codebook(self, x: Tensor, indices: Tensor) -> Tensor:
        """EMA step and dead-code reset on batch x (N, code_dim); returns the batch's code perplexity."""
        onehot = F.one_hot(indices, self.nb_code).to(x.dtype)  # (N, nb_code)
        batch_sum = onehot.t() @ x
        batch_count = onehot.sum(0)
        self.code_sum.mul_(self.mu).add_(batch_sum, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(batch_count, alpha=1 - self.mu)
        used = (self.code_count >= 1.0).unsqueeze(1)
        mean = self.code_sum / self.code_count.clamp(min=1e-12).unsqueeze(1)
        tiled = _tile(x, self.nb_code)
        random_rows = tiled[torch.randperm(len(tiled), device=x.device)[: self.nb_code]]
        # A where, not MoMask's usage·mean + (1-usage)·random: same values, but no 0·inf = NaN once a
        # long-dead code's EMA count underflows to 0.
        self.codebook.copy_(torch.where(used, mean, random_rows))
        return _perplexity(batch_count)

    def forward(self, x: Tensor, temperature: float = 0.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x (B, code_dim, n) -> (quantized (B, code_dim, n) with straight-through gradient,
        indices (B, n), commit loss (), perplexity ()). Training updates the codebook."""
        batch, dim, n = x.shape
        flat = x.permute(0, 2, 1).reshape(-1, dim)
        if self.training and not self.initialized:
            self._init_codebook(flat.detach())
        indices = self.select(flat.detach(), temperature if self.training else 0.0)
        if self.training:
            perplexity = self._update_codebook(flat.detach(), indices)
        else:
            perplexity = _perplexity(torch.bincount(indices, minlength=self.nb_code).to(x.dtype))
        codes = F.embedding(indices, self.codebook)
        commit_loss = F.mse_loss(flat, codes.detach())
        quantized = (
            flat + (codes - flat).detach()
        )  # straight-through: the encoder gets the decoder's gradient
        quantized = quantized.view(batch, n, dim).permute(0, 2, 1)
        return quantized, indices.view(batch, n), commit_loss, perplexity


def _perplexity(counts: Tensor) -> Tensor:
    prob = counts / counts.sum().clamp(min=1e-12)
    return torch.exp(-(prob * torch.log(prob + 1e-7)).sum())


class ResidualQuantizer(nn.Module):
    """Q quantizer layers applied to successive residuals; the quantized latent is the sum of their codes.

    Quantize dropout (training only): with probability `quantize_dropout_prob`, only layers 0..k run
    (k uniform in [cutoff, Q)), and the others return index -1.
    """

    def __init__(self, cfg: RVQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(
            QuantizeEMAReset(cfg.nb_code, cfg.code_dim, cfg.mu) for _ in range(cfg.num_quantizers)
        )

    def forward(self, x: Tensor, temperature: float = 0.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x (B, code_dim, n) -> (quantized (B, code_dim, n), indices (B, n, Q) with -1 for dropped layers,
        commit loss and perplexity averaged over the active layers). Always computed in float32, also
        under CUDA autocast: bfloat16 distances pick other codes and spoil the EMA codebook statistics."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._forward(x.float(), temperature)

    def _forward(self, x: Tensor, temperature: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        num_layers = len(self.layers)
        last_active = num_layers - 1
        if self.training and torch.rand(()).item() < self.cfg.quantize_dropout_prob:
            low = self.cfg.quantize_dropout_cutoff_index
            last_active = int(torch.randint(low, num_layers, ()).item())
        residual = x
        quantized_sum = torch.zeros_like(x)
        indices, losses, perplexities = [], [], []
        for i, layer in enumerate(self.layers):
            if i > last_active:
                indices.append(torch.full((x.shape[0], x.shape[2]), -1, dtype=torch.long, device=x.device))
                continue
            quantized, layer_indices, loss, perplexity = layer(residual, temperature)
            residual = residual - quantized.detach()
            quantized_sum = quantized_sum + quantized
            indices.append(layer_indices)
            losses.append(loss)
            perplexities.append(perplexity)
        commit_loss = torch.stack(losses).mean()
        return quantized_sum, torch.stack(indices, -1), commit_loss, torch.stack(perplexities).mean()

    @torch.no_grad()
    def quantize(self, x: Tensor) -> Tensor:
        """x (B, code_dim, n) -> indices (B, n, Q) by argmin in every layer: no sampling, dropout or EMA.
        In float32, as `forward`."""
        batch, dim, n = x.shape
        indices = []
        with torch.autocast(device_type=x.device.type, enabled=False):
            residual = x.float().permute(0, 2, 1).reshape(-1, dim)
            for layer in self.layers:
                layer_indices = layer.select(residual)
                residual = residual - F.embedding(layer_indices, layer.codebook)
                indices.append(layer_indices.view(batch, n))
        return torch.stack(indices, -1)

    def dequantize(self, indices: Tensor) -> Tensor:
        """indices (B, n, q <= Q) -> latent (B, code_dim, n); missing layers and -1 entries add nothing."""
        if indices.shape[-1] > len(self.layers):
            raise ValueError(f"codes have {indices.shape[-1]} layers, the quantizer has {len(self.layers)}")
        codebook = self.layers[0].codebook
        latent = torch.zeros(
            *indices.shape[:2], self.cfg.code_dim, device=indices.device, dtype=codebook.dtype
        )
        for i in range(indices.shape[-1]):
            layer_indices = indices[..., i]
            codes = F.embedding(layer_indices.clamp(min=0), self.layers[i].codebook)
            latent = latent + codes * (layer_indices >= 0).unsqueeze(-1).to(codes.dtype)
        return latent.permute(0, 2, 1)


class ResidualVQVAE(nn.Module):
    """Motion tokenizer: (B, T, input_dim) <-> codes (B, T / frames_per_token, num_quantizers).

    State-dict keys are those of MoMask's RVQVAE (`encoder.*`, `decoder.*`, `quantizer.layers.{i}.codebook`).
    """

    def __init__(self, cfg: RVQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = ResidualQuantizer(cfg)
        self.decoder = Decoder(cfg)

    @property
    def codebooks(self) -> list[Tensor]:
        """The codebook buffer of each layer, (nb_code, code_dim); editing one in place changes decoding."""
        return [layer.codebook for layer in self.quantizer.layers]

    def forward(self, motion: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Training pass: motion (B, T, D) -> (reconstruction (B, T', D), commit loss, perplexity).

        In training mode codes are Gumbel-sampled and the codebooks move; T' = T rounded down to a
        multiple of frames_per_token.
        """
        latent = self.encoder(motion.permute(0, 2, 1).float())
        temperature = self.cfg.sample_codebook_temp if self.training else 0.0
        quantized, _, commit_loss, perplexity = self.quantizer(latent, temperature)
        return self.decoder(quantized).permute(0, 2, 1), commit_loss, perplexity

    @torch.no_grad()
    def encode(self, motion: Tensor) -> Tensor:
        """motion (B, T, D) -> codes (B, T / frames_per_token, Q), nearest codes in every layer."""
        return self.quantizer.quantize(self.encoder(motion.permute(0, 2, 1).float()))

    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, n, q <= Q), -1 meaning no code -> motion (B, n · frames_per_token, D)."""
        return self.decoder(self.quantizer.dequantize(codes)).permute(0, 2, 1)


def reconstruction_loss(recon: Tensor, target: Tensor, commit_loss: Tensor, cfg: RVQConfig) -> Tensor:
    """MoMask's RVQ training loss: SmoothL1 on all dims + weighted SmoothL1 on the local joint positions
    (dims 4:67; called `loss_vel` in MoMask though it is positions) + commit · commitment loss."""
    target = target[:, : recon.shape[1]]
    loss = F.smooth_l1_loss(recon, target)
    loss = loss + cfg.position_loss_weight * F.smooth_l1_loss(recon[..., 4:67], target[..., 4:67])
    return loss + cfg.commit * commit_loss
