"""Frozen configurations of the four backbone parts, at MoMask's published size and at a small CPU size.

Each part has one dataclass whose defaults are the released HumanML3D configuration, so `published()` is
`cls()`; `small()` is a size that trains in minutes on two CPU cores. `to_dict`/`from_dict` round-trip
through plain JSON types; `from_dict` is strict (an unknown or missing key is an error naming the key).

    cfg = BackboneConfig.small()
    rvq = ResidualVQVAE(cfg.rvq)
    json.dumps(cfg.to_dict())
    assert BackboneConfig.from_dict(cfg.to_dict()) == cfg
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

ACTIVATIONS = ("relu", "gelu", "silu")
NORMS = ("LN", "GN", "BN")

_C = TypeVar("_C", bound="_ConfigDict")


class _ConfigDict:
    """to_dict/from_dict for the flat frozen dataclasses below (fields: int, float, bool, str, None)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = [key for key in data if key not in names]
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; known keys are {names}")
        missing = [name for name in names if name not in data]
        if missing:
            raise ValueError(f"{cls.__name__}: missing key(s) {missing}")
        hints = typing.get_type_hints(cls)
        return cls(**{name: _checked(cls.__name__, name, data[name], hints[name]) for name in names})


def _checked(owner: str, name: str, value: Any, hint: Any) -> Any:
    """`value` if it fits the field type `hint` (an int is accepted for a float field), else a ValueError."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        if kind is type(None) and value is None:
            return None
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    raise ValueError(f"{owner}.{name}: expected {hint}, got {value!r}")


def _require(condition: bool, owner: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{owner}: {message}")


@dataclass(frozen=True)
class RVQConfig(_ConfigDict):
    """Residual VQ-VAE (motion tokenizer). Defaults: `rvq_nq6_dc512_nc512_noshare_qdp0.2`."""

    input_dim: int = 263
    """Motion feature size (263 for HumanML3D and Motion-X in the HumanML3D representation)."""
    width: int = 512
    """Channels of every conv layer; parameters grow with width², so this sets the model size."""
    code_dim: int = 512
    """Size of a latent vector and of each codebook entry (opt.txt: `code_dim` = `output_emb_width`)."""
    nb_code: int = 512
    """Codes per quantizer layer; more codes reconstruct better but leave more codes dead on small data."""
    num_quantizers: int = 6
    """Residual quantizer layers; each adds detail, and each beyond the first is one more residual-transformer
    prediction at generation time."""
    down_t: int = 2
    """Temporal down-sampling stages; the token rate is frames / stride_t**down_t (4 frames per token)."""
    stride_t: int = 2
    """Stride of each down-sampling conv (kernel 2·stride_t) and scale of each nearest up-sampling."""
    depth: int = 3
    """Residual conv blocks per Resnet1D; deeper widens the receptive field at linear cost."""
    dilation_growth_rate: int = 3
    """Block b has dilation rate**b (1, 3, 9), applied in reverse order (9, 3, 1)."""
    activation: str = "relu"
    """One of relu, gelu, silu (opt.txt `vq_act`)."""
    norm: str | None = None
    """None (released), or LN, GN, BN inside each residual block (opt.txt `vq_norm`); a norm adds state-dict
    keys, so only None loads the official checkpoint."""
    dropout: float = 0.2
    """Dropout on each residual block's branch (fixed at 0.2 in MoMask)."""
    quantize_dropout_prob: float = 0.2
    """Chance per training batch of keeping only layers 0..k (k uniform); trains coarse-only decoding."""
    quantize_dropout_cutoff_index: int = 0
    """Lowest k quantize dropout can draw; 0 means that at least layer 0 is always kept."""
    mu: float = 0.99
    """EMA decay of the codebook statistics; closer to 1 is smoother but adapts more slowly."""
    sample_codebook_temp: float = 0.5
    """Temperature of the Gumbel code sampling in training (eval and `encode` use argmin); 0 means argmin."""
    commit: float = 0.02
    """Weight of the commitment loss in the training loss."""
    position_loss_weight: float = 0.5
    """Weight of the extra SmoothL1 term on the local joint positions (dims 4:67); MoMask's `loss_vel`."""

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("input_dim", "width", "code_dim", "nb_code", "num_quantizers", "down_t", "stride_t"):
            _require(getattr(self, field) >= 1, name, f"{field} must be >= 1")
        _require(self.depth >= 1 and self.dilation_growth_rate >= 1, name, "depth and growth must be >= 1")
        _require(self.activation in ACTIVATIONS, name, f"activation must be one of {ACTIVATIONS}")
        _require(self.norm is None or self.norm in NORMS, name, f"norm must be None or one of {NORMS}")
        _require(0.0 <= self.quantize_dropout_prob <= 1.0, name, "quantize_dropout_prob must be in [0, 1]")
        _require(
            0 <= self.quantize_dropout_cutoff_index < self.num_quantizers,
            name,
            "quantize_dropout_cutoff_index must be in [0, num_quantizers)",
        )
        _require(0.0 <= self.mu < 1.0, name, "mu must be in [0, 1)")
        _require(0.0 <= self.dropout < 1.0, name, "dropout must be in [0, 1)")

    @property
    def frames_per_token(self) -> int:
        """Frames per token (MoMask's `unit_length`): 4 at the published size."""
        return self.stride_t**self.down_t

    @classmethod
    def published(cls) -> RVQConfig:
        """The released HumanML3D tokenizer: 19,436,807 parameters plus 6×512×512 codebook values."""
        return cls()

    @classmethod
    def small(cls) -> RVQConfig:
        """About 1.4 M parameters; same structure (6 layers, ×4 down-sampling), narrower and fewer codes."""
        return cls(width=128, code_dim=128, nb_code=256)


@dataclass(frozen=True)
class MaskTransformerConfig(_ConfigDict):
    """Masked (base-layer) transformer. Defaults: `t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns`."""

    num_tokens: int = 512
    """Real codes (the RVQ's nb_code); mask_id = num_tokens and pad_id = num_tokens + 1."""
    code_dim: int = 512
    """Token embedding size (MoMask uses the RVQ's code_dim; the embedding is learned, not the codebook)."""
    latent_dim: int = 384
    """Transformer width; attention and MLP cost grow with its square."""
    ff_size: int = 1024
    """Hidden size of each feed-forward block."""
    n_layers: int = 8
    """Encoder layers; each costs one attention + MLP per decoding pass."""
    n_heads: int = 6
    """Attention heads; must divide latent_dim."""
    dropout: float = 0.2
    """Dropout in the positional encoding and every encoder layer; higher resists overfitting small data."""
    cond_dim: int = 512
    """Size of the text feature: 512 for CLIP ViT-B/32, 384 for all-MiniLM-L6-v2."""
    cond_drop_prob: float = 0.1
    """Chance of zeroing a sample's text feature in training, which teaches the unconditional model that
    classifier-free guidance needs."""
    max_len: int = 5000
    """Rows of the sinusoidal position table (saved in checkpoints as `position_enc.pe`); longest token
    sequence the model accepts."""

    def __post_init__(self) -> None:
        _check_transformer(self)

    @property
    def mask_id(self) -> int:
        return self.num_tokens

    @property
    def pad_id(self) -> int:
        return self.num_tokens + 1

    @classmethod
    def published(cls) -> MaskTransformerConfig:
        """The released HumanML3D masked transformer: 12,048,768 parameters without CLIP."""
        return cls()

    @classmethod
    def small(cls) -> MaskTransformerConfig:
        """About 1 M parameters, for the small RVQ (256 codes of size 128) and MiniLM text features."""
        return cls(
            num_tokens=256,
            code_dim=128,
            latent_dim=128,
            ff_size=512,
            n_layers=4,
            n_heads=4,
            cond_dim=384,
            max_len=256,
        )


@dataclass(frozen=True)
class ResidualTransformerConfig(_ConfigDict):
    """Residual transformer (layers 1..Q-1). Defaults: `tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw`."""

    num_tokens: int = 512
    """Real codes (the RVQ's nb_code); pad_id = num_tokens and logits cover num_tokens + 1 classes."""
    code_dim: int = 512
    """Size of the per-layer token embeddings and output projections."""
    num_quantizers: int = 6
    """RVQ layers, base included; the model predicts layers 1..num_quantizers-1."""
    share_weight: bool = True
    """Tie the embedding of layer j to the output projection of layer j (j = 1..Q-2): fewer parameters
    (released setting); False gives separate embeddings, projections and output biases."""
    latent_dim: int = 384
    """Transformer width; attention and MLP cost grow with its square."""
    ff_size: int = 1024
    """Hidden size of each feed-forward block."""
    n_layers: int = 8
    """Encoder layers; one pass per residual layer (two with guidance) at generation."""
    n_heads: int = 6
    """Attention heads; must divide latent_dim."""
    dropout: float = 0.2
    """Dropout in the positional encoding and every encoder layer."""
    cond_dim: int = 512
    """Size of the text feature: 512 for CLIP ViT-B/32, 384 for all-MiniLM-L6-v2."""
    cond_drop_prob: float = 0.2
    """Chance of zeroing a sample's text feature in training (for classifier-free guidance)."""
    max_len: int = 5000
    """Rows of the sinusoidal position table (saved as `position_enc.pe`)."""

    def __post_init__(self) -> None:
        _check_transformer(self)
        _require(self.num_quantizers >= 2, type(self).__name__, "num_quantizers must be >= 2")

    @property
    def pad_id(self) -> int:
        return self.num_tokens

    @classmethod
    def published(cls) -> ResidualTransformerConfig:
        """The released HumanML3D residual transformer: 13,364,224 parameters without CLIP."""
        return cls()

    @classmethod
    def small(cls) -> ResidualTransformerConfig:
        """About 1.1 M parameters, matching `RVQConfig.small()` and MiniLM text features."""
        return cls(
            num_tokens=256,
            code_dim=128,
            latent_dim=128,
            ff_size=512,
            n_layers=4,
            n_heads=4,
            cond_dim=384,
            max_len=256,
        )


def _check_transformer(cfg: MaskTransformerConfig | ResidualTransformerConfig) -> None:
    name = type(cfg).__name__
    for field in (
        "num_tokens",
        "code_dim",
        "latent_dim",
        "ff_size",
        "n_layers",
        "n_heads",
        "cond_dim",
        "max_len",
    ):
        _require(getattr(cfg, field) >= 1, name, f"{field} must be >= 1")
    _require(cfg.latent_dim % cfg.n_heads == 0, name, "n_heads must divide latent_dim")
    _require(cfg.latent_dim % 2 == 0, name, "latent_dim must be even (sinusoidal positions)")
    _require(0.0 <= cfg.dropout < 1.0, name, "dropout must be in [0, 1)")
    _require(0.0 <= cfg.cond_drop_prob <= 1.0, name, "cond_drop_prob must be in [0, 1]")


@dataclass(frozen=True)
class LengthEstimatorConfig(_ConfigDict):
    """Text feature -> distribution over token lengths. Defaults: MoMask's `length_estimator`."""

    cond_dim: int = 512
    """Size of the text feature: 512 for CLIP ViT-B/32, 384 for all-MiniLM-L6-v2."""
    hidden_dim: int = 512
    """Width of the first hidden layer; the next two are hidden_dim/2 and hidden_dim/4."""
    num_classes: int = 50
    """Token-length classes 0..num_classes-1 (50 = 200 frames / 4)."""
    dropout: float = 0.2
    """Dropout after the first two hidden layers."""
    negative_slope: float = 0.2
    """LeakyReLU slope."""

    def __post_init__(self) -> None:
        name = type(self).__name__
        _require(self.cond_dim >= 1 and self.num_classes >= 1, name, "cond_dim and num_classes must be >= 1")
        _require(
            self.hidden_dim >= 4 and self.hidden_dim % 4 == 0, name, "hidden_dim must be a multiple of 4"
        )
        _require(0.0 <= self.dropout < 1.0, name, "dropout must be in [0, 1)")

    @classmethod
    def published(cls) -> LengthEstimatorConfig:
        """The released estimator: 435,122 parameters."""
        return cls()

    @classmethod
    def small(cls) -> LengthEstimatorConfig:
        """About 0.14 M parameters, for MiniLM text features."""
        return cls(cond_dim=384, hidden_dim=256)


@dataclass(frozen=True)
class BackboneConfig:
    """The four parts together, checked for consistency (token count, code size, layers, text feature)."""

    rvq: RVQConfig
    mask: MaskTransformerConfig
    residual: ResidualTransformerConfig
    length: LengthEstimatorConfig

    def __post_init__(self) -> None:
        name = type(self).__name__
        for part in (self.mask, self.residual):
            _require(
                part.num_tokens == self.rvq.nb_code, name, f"{type(part).__name__}.num_tokens != nb_code"
            )
            _require(part.code_dim == self.rvq.code_dim, name, f"{type(part).__name__}.code_dim != code_dim")
        _require(self.residual.num_quantizers == self.rvq.num_quantizers, name, "num_quantizers differ")
        dims = {self.mask.cond_dim, self.residual.cond_dim, self.length.cond_dim}
        _require(len(dims) == 1, name, f"the parts expect different text feature sizes {sorted(dims)}")

    @classmethod
    def published(cls) -> BackboneConfig:
        return cls(
            RVQConfig.published(),
            MaskTransformerConfig.published(),
            ResidualTransformerConfig.published(),
            LengthEstimatorConfig.published(),
        )

    @classmethod
    def small(cls) -> BackboneConfig:
        return cls(
            RVQConfig.small(),
            MaskTransformerConfig.small(),
            ResidualTransformerConfig.small(),
            LengthEstimatorConfig.small(),
        )

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {
            "rvq": self.rvq.to_dict(),
            "mask": self.mask.to_dict(),
            "residual": self.residual.to_dict(),
            "length": self.length.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> BackboneConfig:
        parts = {
            "rvq": RVQConfig,
            "mask": MaskTransformerConfig,
            "residual": ResidualTransformerConfig,
            "length": LengthEstimatorConfig,
        }
        unknown = [key for key in data if key not in parts]
        missing = [key for key in parts if key not in data]
        if unknown or missing:
            raise ValueError(f"BackboneConfig: unknown key(s) {unknown}, missing key(s) {missing}")
        return cls(**{key: part.from_dict(data[key]) for key, part in parts.items()})
