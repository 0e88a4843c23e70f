"""The HumanML3D motion representation: the 22-joint skeleton, kinematics, the 263-d features, mirroring
and normalisation statistics.

    >>> from benchmark.motion import features_from_joints, joints_from_features
    >>> features = features_from_joints(joints)        # (T+1, 22, 3) metres, Y up -> (T, 263) float32
    >>> joints_again = joints_from_features(features)  # (T, 22, 3)
"""

from benchmark.motion.features import features_from_joints, joints_from_features, source_joints_from_features
from benchmark.motion.kinematics import forward_kinematics, inverse_kinematics
from benchmark.motion.mirror import mirror_caption, mirror_features, mirror_joints
from benchmark.motion.skeleton import FEATURE_DIM, FEATURE_SLICES, NUM_JOINTS, target_offsets
from benchmark.motion.stats import feature_statistics, model_std

__all__ = [
    "FEATURE_DIM",
    "FEATURE_SLICES",
    "NUM_JOINTS",
    "feature_statistics",
    "features_from_joints",
    "forward_kinematics",
    "inverse_kinematics",
    "joints_from_features",
    "mirror_caption",
    "mirror_features",
    "mirror_joints",
    "model_std",
    "source_joints_from_features",
    "target_offsets",
]
