"""Length estimator: text feature -> distribution over motion lengths in tokens (MoMask's `LengthEstimator`).

Used when a prompt comes without a length: the token count is sampled from the softmax, and frames =
4 · tokens. Layer indices of `output` reproduce the official keys (`output.0` ... `output.11`).

    estimator = LengthEstimator(LengthEstimatorConfig.small())
    token_lengths = estimator.sample(text_features, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.backbone.config import LengthEstimatorConfig


class LengthEstimator(nn.Module):
    """MLP (B, cond_dim) -> logits (B, num_classes); class c means c tokens (4·c frames)."""

    def __init__(self, cfg: LengthEstimatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden_dim
        slope = cfg.negative_slope
        self.output = nn.Sequential(
            nn.Linear(cfg.cond_dim, h),  # 0
            nn.LayerNorm(h),
            nn.LeakyReLU(slope),
            nn.Dropout(cfg.dropout),
            nn.Linear(h, h // 2),  # 4
            nn.LayerNorm(h // 2),
            nn.LeakyReLU(slope),
            nn.Dropout(cfg.dropout),
            nn.Linear(h // 2, h // 4),  # 8
            nn.LayerNorm(h // 4),
            nn.LeakyReLU(slope),
            nn.Linear(h // 4, cfg.num_classes),  # 11
        )
        self.apply(_init_weights)

    def forward(self, cond: Tensor) -> Tensor:
        """cond (B, cond_dim), the unnormalised text feature -> logits (B, num_classes)."""
        return self.output(cond)

    @torch.no_grad()
    def sample(self, cond: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Token lengths (B,) drawn from softmax(logits), as MoMask does (class 0, i.e. no tokens, is possible
        in principle; callers that need at least one token should clamp)."""
        probs = F.softmax(self.forward(cond), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
