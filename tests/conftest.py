"""Shared fixtures. The real HumanML3D reference files come from ../shared (or $HMU_SHARED_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# One CPU thread for torch in the tests and in the processes they start: float sums then come out the same on
# every machine, whatever its core count, and the small models the tests train (the direction tests' world
# above all) are the same models everywhere. Set before anything imports torch.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"


def _shared_dir() -> Path:
    return Path(os.environ.get("HMU_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The real HumanML3D sample: Mean/Std, split files, motion 012314 as features and joints.

    Missing reference files fail the run in CI (CI=true) and skip the test elsewhere, loudly.
    """
    path = _shared_dir() / "data" / "humanml3d-reference"
    if not (path / "new_joint_vecs" / "012314.npy").exists():
        message = f"HumanML3D reference files not found under {path} (set HMU_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def leaderboard_world(tmp_path_factory):
    """Results of real tiny benches for the leaderboard tests (tests/leaderboard_support.py), made once."""
    from leaderboard_support import bench_world

    return bench_world(tmp_path_factory)
