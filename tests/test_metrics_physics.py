"""Physical plausibility (`benchmark.metrics.physics`) on motions whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics import (
    MetricInputError,
    floor_penetration,
    floor_penetration_max,
    foot_skating_ratio,
    foot_skating_speed,
    jerk,
    jerk_curve,
    transition_jerk_area,
    transition_peak_jerk,
)

FEET = [7, 8, 10, 11]  # ankles and toes


def standing(frames: int) -> np.ndarray:
    """A still pose: ankles at 4 cm, toes at 2 cm (both on the floor), every other joint 0.3-1.7 m up."""
    pose = np.zeros((22, 3))
    pose[:, 0] = np.linspace(-0.3, 0.3, 22)
    pose[:, 1] = np.linspace(0.3, 1.7, 22)
    pose[[7, 8], 1] = 0.04
    pose[[10, 11], 1] = 0.02
    return np.repeat(pose[None], frames, axis=0)


def sliding(frames: int, speed: float, fps: float, joints: list[int] | None = None) -> np.ndarray:
    """`standing`, with the given joints (all by default) moving along x at `speed` m/s."""
    motion = standing(frames)
    moving = slice(None) if joints is None else joints
    motion[:, moving, 0] += (speed * np.arange(frames) / fps)[:, None]
    return motion


# --- foot skating ------------------------------------------------------------------------------------------


def test_skating_speed_is_the_sliding_speed() -> None:
    assert foot_skating_speed([sliding(60, 0.8, fps=20)], fps=20) == pytest.approx(0.8)
    assert foot_skating_speed([sliding(90, 0.8, fps=30)], fps=30) == pytest.approx(0.8)  # m/s at any fps


def test_skating_speed_pools_foot_joints() -> None:
    """Only the left toe slides: one of the four foot joints in contact moves."""
    assert foot_skating_speed([sliding(40, 1.2, fps=20, joints=[10])], fps=20) == pytest.approx(1.2 / 4)


def test_feet_off_the_floor_do_not_skate() -> None:
    airborne = sliding(40, 1.0, fps=20)
    airborne[:, :, 1] += 0.10
    assert foot_skating_ratio([airborne], fps=20) == 0.0
    assert foot_skating_speed([airborne], fps=20) == 0.0


def test_skating_ratio_follows_gmd() -> None:
    """GMD: the pair speed and its centred 5-frame average (zero-padded) must both exceed 0.5 m/s.

    With T - 1 = 59 frame pairs at constant speed v, the average is 0.6 v at the first and last pair and
    0.8 v at the second and second-to-last: at 1 m/s every pair skates, at 0.7 m/s all but 2, at 0.55 m/s
    all but 4, at 0.4 m/s none.
    """
    assert foot_skating_ratio([sliding(60, 1.0, fps=20)], fps=20) == pytest.approx(1.0)
    assert foot_skating_ratio([sliding(60, 0.7, fps=20)], fps=20) == pytest.approx(57 / 59)
    assert foot_skating_ratio([sliding(60, 0.55, fps=20)], fps=20) == pytest.approx(55 / 59)
    assert foot_skating_ratio([sliding(60, 0.4, fps=20)], fps=20) == 0.0
    # Either foot: only the right toe slides.
    assert foot_skating_ratio([sliding(60, 1.0, fps=20, joints=[11])], fps=20) == pytest.approx(1.0)
    # Averaged per motion.
    motions = [sliding(60, 1.0, fps=20), standing(30)]
    assert foot_skating_ratio(motions, fps=20) == pytest.approx(0.5)


# --- floor penetration -------------------------------------------------------------------------------------


def test_body_sunk_three_centimetres() -> None:
    sunk = standing(30)
    sunk[..., 1] -= 0.05  # the toes, lowest at 2 cm, end 3 cm under the floor
    assert floor_penetration([sunk]) == pytest.approx(0.03)
    assert floor_penetration_max([sunk]) == pytest.approx(0.03)
    assert floor_penetration([standing(30)]) == 0.0


def test_penetration_mean_and_max_over_frames_and_motions() -> None:
    half = standing(40)
    half[20:, :, 1] -= 0.05
    assert floor_penetration([half]) == pytest.approx(0.015)
    assert floor_penetration_max([half]) == pytest.approx(0.03)
    assert floor_penetration([half, standing(10)]) == pytest.approx(0.0075)
    assert floor_penetration([standing(10)], floor_height=0.03) == pytest.approx(0.01)


# --- jerk --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [20.0, 30.0])
def test_cubic_has_jerk_six(fps: float) -> None:
    """x(t) = t^3 (t in seconds): the third derivative is 6 m/s^3, exactly, whatever the frame rate."""
    t = np.arange(50) / fps
    motion = standing(50)
    motion[:, :, 0] += (t**3)[:, None]
    assert jerk([motion], fps) == pytest.approx(6.0)
    assert jerk_curve(motion, fps) == pytest.approx(np.full(47, 6.0))


def test_jerk_is_a_vector_magnitude_and_zero_for_a_parabola() -> None:
    t = np.arange(40) / 20.0
    cubic = standing(40) + (t**3)[:, None, None] * np.array([1.0, 2.0, 2.0])
    assert jerk([cubic], fps=20) == pytest.approx(18.0)  # 6 · |(1, 2, 2)|
    parabola = standing(40) + (t**2)[:, None, None]
    assert jerk([parabola], fps=20) == pytest.approx(0.0, abs=1e-6)


# --- transitions -------------------------------------------------------------------------------------------


def velocity_step(frames: int, step_at: int, before: float, after: float, fps: float) -> np.ndarray:
    """Every joint moves along x at `before` m/s, then at `after` m/s from frame `step_at`."""
    velocity = np.where(np.arange(frames - 1) < step_at, before, after)
    motion = standing(frames)
    motion[1:, :, 0] += (np.cumsum(velocity) / fps)[:, None]
    return motion


def test_velocity_step_peak_and_area() -> None:
    """A step of dv m/s in velocity: two jerk samples of dv·fps^2, the rest 0."""
    fps, dv = 20.0, 1.5
    motion = velocity_step(100, 50, 0.5, 0.5 + dv, fps)
    assert transition_peak_jerk([motion], [[50]], fps) == pytest.approx(dv * fps**2)
    assert transition_jerk_area([motion], [[50]], fps, reference_jerk=0.0) == pytest.approx(2 * dv * fps)
    # A reference level r: two samples dv·fps^2 − r above it, the other 2·15 − 2 samples r below it.
    r = 10.0
    area = transition_jerk_area([motion], [[50]], fps, reference_jerk=r)
    assert area == pytest.approx((2 * (dv * fps**2 - r) + 28 * r) / fps)


def test_transition_curves_are_averaged_before_the_peak() -> None:
    fps = 20.0
    motions = [velocity_step(100, 40, 0.0, 1.0, fps), velocity_step(80, 50, 0.0, -3.0, fps)]
    assert transition_peak_jerk(motions, [[40], [50]], fps) == pytest.approx(2.0 * fps**2)


def test_transition_window_must_fit() -> None:
    with pytest.raises(MetricInputError, match="window"):
        transition_peak_jerk([velocity_step(40, 5, 0.0, 1.0, 20.0)], [[5]], 20.0)


# --- inputs ------------------------------------------------------------------------------------------------


def test_refuses_bad_motions() -> None:
    with pytest.raises(MetricInputError):
        jerk([np.zeros((10, 21, 3))], fps=20)
    with pytest.raises(MetricInputError):
        jerk([np.zeros((3, 22, 3))], fps=20)
    with pytest.raises(MetricInputError):
        floor_penetration([])
    bad = standing(10)
    bad[3, 4, 1] = np.nan
    with pytest.raises(MetricInputError, match="NaN"):
        foot_skating_ratio([bad], fps=20)
