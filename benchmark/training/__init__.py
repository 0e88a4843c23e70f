"""Training of the text-to-motion backbone, one part at a time, resumable, on any HumanML3D-layout folder.

    from benchmark.training import MotionData, TextFeatureCache, TrainSettings, train_rvq
    data = MotionData.open("data/embedded", split="train", val_split="val")
    result = train_rvq(data, BackboneConfig.small().rvq, TrainSettings.small("rvq"), work_dir="work")
    result.metrics          # {"rvq_train_loss": ..., "rvq_val_l1": ..., "rvq_val_joint_error_m": ...}

`hmu train` (benchmark/cli/train.py) runs the parts in sequence and writes a model folder.
"""

from benchmark.training.data import MotionData, TextFeatureCache, resolve_split
from benchmark.training.engine import LoopResult, TrainingError, run_loop
from benchmark.training.loops import (
    TrainResult,
    evaluate_length_estimator,
    evaluate_mask_transformer,
    evaluate_residual_transformer,
    evaluate_rvq,
    train_length_estimator,
    train_mask_transformer,
    train_residual_transformer,
    train_rvq,
    training_items,
)
from benchmark.training.settings import MODEL_PARTS, PARTS, TrainSettings, learning_rate

__all__ = [
    "MODEL_PARTS",
    "PARTS",
    "LoopResult",
    "MotionData",
    "TextFeatureCache",
    "TrainResult",
    "TrainSettings",
    "TrainingError",
    "evaluate_length_estimator",
    "evaluate_mask_transformer",
    "evaluate_residual_transformer",
    "evaluate_rvq",
    "learning_rate",
    "resolve_split",
    "run_loop",
    "train_length_estimator",
    "train_mask_transformer",
    "train_residual_transformer",
    "train_rvq",
    "training_items",
]
