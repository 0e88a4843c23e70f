"""Left/right mirroring of joints, features and captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.data.captions import Caption, Token, parse_caption_line
from benchmark.motion.features import features_from_joints, joints_from_features
from benchmark.motion.mirror import mirror_caption, mirror_features, mirror_joints, swap_sides
from benchmark.motion.quaternion import cont6d_from_matrix, matrix_from_cont6d
from benchmark.motion.skeleton import FEATURE_SLICES, JOINT_NAMES, MIRROR_PERMUTATION

REFLECTION = np.diag([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def reference(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    features = np.load(reference_dir / "new_joint_vecs" / "012314.npy")
    joints = np.load(reference_dir / "new_joints" / "012314.npy")
    return features, joints


def test_mirroring_twice_is_the_identity(reference: tuple[np.ndarray, np.ndarray]) -> None:
    features, joints = reference
    np.testing.assert_array_equal(mirror_features(mirror_features(features)), features)
    np.testing.assert_array_equal(mirror_joints(mirror_joints(joints)), joints)
    assert mirror_features(features).dtype == features.dtype


def test_mirror_joints_swaps_sides_and_negates_x(reference: tuple[np.ndarray, np.ndarray]) -> None:
    _, joints = reference
    mirrored = mirror_joints(joints)
    left_wrist, right_wrist = JOINT_NAMES.index("L_wrist"), JOINT_NAMES.index("R_wrist")
    np.testing.assert_array_equal(mirrored[:, left_wrist], joints[:, right_wrist] * [-1, 1, 1])
    np.testing.assert_array_equal(mirrored[:, 0], joints[:, 0] * [-1, 1, 1])
    assert MIRROR_PERMUTATION[left_wrist] == right_wrist


def test_mirrored_features_decode_to_mirrored_joints(reference: tuple[np.ndarray, np.ndarray]) -> None:
    features, _ = reference
    recovered = joints_from_features(mirror_features(features))
    assert np.abs(recovered - mirror_joints(joints_from_features(features))).max() < 1e-5


def test_mirrored_rotations_are_m_r_m(reference: tuple[np.ndarray, np.ndarray]) -> None:
    features, _ = reference
    rotations = matrix_from_cont6d(features[:, FEATURE_SLICES.rot6d].reshape(-1, 21, 6).astype(np.float64))
    expected = cont6d_from_matrix(REFLECTION @ rotations @ REFLECTION)[
        :, np.array(MIRROR_PERMUTATION[1:]) - 1
    ]
    mirrored = mirror_features(features)[:, FEATURE_SLICES.rot6d].reshape(-1, 21, 6)
    np.testing.assert_allclose(mirrored, expected, atol=1e-5)


def test_mirrored_contacts_and_root(reference: tuple[np.ndarray, np.ndarray]) -> None:
    features, _ = reference
    mirrored = mirror_features(features)
    np.testing.assert_array_equal(mirrored[:, 259:261], features[:, 261:263])
    np.testing.assert_array_equal(mirrored[:, 261:263], features[:, 259:261])
    np.testing.assert_array_equal(mirrored[:, :4], features[:, :4] * [-1, -1, 1, 1])


def test_extraction_commutes_with_mirroring_on_a_symmetric_skeleton(
    reference: tuple[np.ndarray, np.ndarray],
) -> None:
    """Without retargeting, every extraction step (IK quirks included) is mirror-equivariant."""
    _, joints = reference
    direct = features_from_joints(mirror_joints(joints), uniform_skeleton=False)
    mirrored = mirror_features(features_from_joints(joints, uniform_skeleton=False))
    assert np.abs(direct - mirrored).max() < 1e-5  # measured 0


def test_extraction_commutes_with_mirroring_approximately(reference: tuple[np.ndarray, np.ndarray]) -> None:
    """The default extraction retargets to the target skeleton, whose left and right bones differ by up to
    7 mm, and scales the root by the right leg: the mirrored motion gets slightly different hips and
    shoulders, hence a facing direction that differs by a degree or two. Measured on 012314: mean absolute
    error per group <= 4.2e-3, max 0.125 (rot6d of the chain-start joints during a fast turn), 0.15% of
    foot contacts flipped."""
    _, joints = reference
    error = np.abs(
        features_from_joints(mirror_joints(joints)) - mirror_features(features_from_joints(joints))
    )
    for group in FEATURE_SLICES:
        assert error[:, group].mean() < 1e-2
    continuous = slice(0, FEATURE_SLICES.foot_contact.start)
    assert error[:, continuous].max() < 0.2
    assert (error[:, FEATURE_SLICES.foot_contact] > 0).mean() < 0.01


def test_mirror_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 263\)"):
        mirror_features(np.zeros((4, 251)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 22, 3\)"):
        mirror_joints(np.zeros((4, 22, 2)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a man steps left then right.", "a man steps right then left."),
        ("Left hand up, RIGHT foot out", "Right hand up, LEFT foot out"),
        ("walks leftward and then rightwards", "walks rightward and then leftwards"),
        ("a left-handed throw", "a right-handed throw"),
        ("leftover brightness stays", "leftover brightness stays"),
    ],
)
def test_swap_sides(text: str, expected: str) -> None:
    assert swap_sides(text) == expected
    assert swap_sides(expected) == text


def test_mirror_caption_swaps_text_and_tokens() -> None:
    caption = parse_caption_line(
        "a person raises their Left arm to the right.#a/DET person/NOUN raise/VERB their/PRON left/ADJ "
        "arm/NOUN to/ADP the/DET right/NOUN#1.5#4.0"
    )
    mirrored = mirror_caption(caption)
    assert isinstance(mirrored, Caption)
    assert mirrored.text == "a person raises their Right arm to the left."
    assert mirrored.tokens[4] == Token("right", "ADJ")
    assert mirrored.tokens[8] == Token("left", "NOUN")
    assert mirrored.tokens[:4] == caption.tokens[:4]
    assert (mirrored.start, mirrored.end) == (1.5, 4.0)
    assert mirror_caption(mirrored) == caption
