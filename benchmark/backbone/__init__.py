"""The text-to-motion backbone: MoMask's architecture, small enough to train on a CPU, or at the published
size loading the official checkpoints.

Parts: `ResidualVQVAE` (motion <-> codes), `MaskTransformer` (text -> base-layer codes), `ResidualTransformer`
(base layer -> all layers) and `LengthEstimator` (text -> length). The text feature (CLIP or MiniLM) is
computed outside and passed in as a (B, cond_dim) tensor.

    from benchmark.backbone import BackboneConfig, MaskTransformer, ResidualTransformer, ResidualVQVAE
    cfg = BackboneConfig.small()
    vq, mask, residual = ResidualVQVAE(cfg.rvq), MaskTransformer(cfg.mask), ResidualTransformer(cfg.residual)
    base = mask.generate(text_features, token_lengths)
    motion = vq.decode(residual.generate(base, text_features, token_lengths))   # normalised features
"""

from benchmark.backbone.checkpoints import (
    CheckpointError,
    CheckpointFile,
    load_checkpoint,
    load_official_length_estimator,
    load_official_mask_transformer,
    load_official_residual_transformer,
    load_official_rvq,
    load_official_state_dict,
    read_checkpoint,
    read_opt_txt,
    save_checkpoint,
    write_checkpoint,
    write_opt_txt,
)
from benchmark.backbone.config import (
    BackboneConfig,
    LengthEstimatorConfig,
    MaskTransformerConfig,
    ResidualTransformerConfig,
    RVQConfig,
)
from benchmark.backbone.length_estimator import LengthEstimator
from benchmark.backbone.model import (
    Backbone,
    DatasetInfo,
    LoadedModel,
    ModelCard,
    load_model,
    model_hash,
    read_model_card,
    resolve_device,
    save_model,
)
from benchmark.backbone.rvq import ResidualVQVAE, reconstruction_loss
from benchmark.backbone.transformers import (
    LogitsProcessor,
    MaskTransformer,
    ResidualTransformer,
    SamplingStep,
)

__all__ = [
    "Backbone",
    "BackboneConfig",
    "DatasetInfo",
    "LoadedModel",
    "ModelCard",
    "load_model",
    "model_hash",
    "read_model_card",
    "resolve_device",
    "save_model",
    "CheckpointError",
    "CheckpointFile",
    "LengthEstimator",
    "LengthEstimatorConfig",
    "LogitsProcessor",
    "MaskTransformer",
    "MaskTransformerConfig",
    "RVQConfig",
    "ResidualTransformer",
    "ResidualTransformerConfig",
    "ResidualVQVAE",
    "SamplingStep",
    "load_checkpoint",
    "load_official_length_estimator",
    "load_official_mask_transformer",
    "load_official_residual_transformer",
    "load_official_rvq",
    "load_official_state_dict",
    "read_checkpoint",
    "read_opt_txt",
    "reconstruction_loss",
    "save_checkpoint",
    "write_checkpoint",
    "write_opt_txt",
]
