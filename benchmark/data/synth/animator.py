"""Procedural animation of the 22-joint HumanML3D skeleton: a blendable pose track turned into joint
positions.

A `PoseTrack` holds, per frame, the handful of quantities an animator thinks in rather than 22 rotations:
where the root is and which way it faces, how high the pelvis wants to be, how the pelvis, spine and neck are
tilted, where each wrist should be (in the chest's frame) and where each ankle should be (in the world), plus
the knee and elbow directions. `solve_joints` turns a track into joint positions:

- the torso, neck and head, collars and hips by forward kinematics of the rest bones (rotations only), and
- the arms and legs by analytic two-bone inverse kinematics towards the wrist and ankle targets,

so every bone keeps exactly the length of `benchmark.motion.skeleton.target_offsets()` on every frame. The
pelvis height is lowered, where needed, until every foot whose target lies on the floor reaches it, so planted
feet touch the floor and do not slide (their targets are fixed points of the world), without the actions
having to compute the pelvis height themselves. Tracks blend linearly (`PoseTrack.blend`, `concatenate`),
which is smooth because every channel is a position or a small rotation vector.

    >>> track = PoseTrack.neutral(frames=40)                 # standing still, facing +Z
    >>> joints = solve_joints(track)                          # (40, 22, 3)
    >>> float(joints[:, FOOT_JOINTS, 1].min()) >= -1e-9       # the toes touch the floor
    True
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from benchmark.motion.quaternion import qmul, qrot
from benchmark.motion.skeleton import NUM_JOINTS, target_offsets

# Joint indices used here (see the skeleton module for the full table).
PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = range(10)
L_FOOT, R_FOOT, NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER = range(10, 18)
L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = range(18, 22)
FOOT_JOINTS: tuple[int, ...] = (L_ANKLE, R_ANKLE, L_FOOT, R_FOOT)

BONE_LENGTHS: np.ndarray = np.linalg.norm(target_offsets(), axis=-1)
"""Length (m) of the bone ending at each joint (0 for the root), those of the HumanML3D target skeleton."""


def _direction(x: float, y: float, z: float) -> np.ndarray:
    vector = np.array([x, y, z])
    return vector / np.linalg.norm(vector)


# Rest directions of the bones that are posed by rotation (the limbs are posed by inverse kinematics).
# They follow a real standing SMPL body (hips below and beside the pelvis, a slightly curved spine, the
# head joint above and in front of the neck) rather than the raw offsets, whose arms hang from the collars.
# Index 0 is left, 1 is right: left is +X when facing +Z with Y up.
_REST_DIRECTIONS: dict[int, np.ndarray] = {
    L_HIP: _direction(0.8, -0.6, 0.0),
    R_HIP: _direction(-0.8, -0.6, 0.0),
    SPINE1: _direction(0.0, 0.97, -0.2),
    SPINE2: _direction(0.0, 1.0, 0.08),
    SPINE3: _direction(0.0, 1.0, 0.12),
    NECK: _direction(0.0, 0.96, 0.2),
    L_COLLAR: _direction(0.35, 0.93, 0.0),
    R_COLLAR: _direction(-0.35, 0.93, 0.0),
    HEAD: _direction(0.0, 0.85, 0.5),
    L_SHOULDER: _direction(0.97, -0.12, -0.05),
    R_SHOULDER: _direction(-0.97, -0.12, -0.05),
}
REST_BONES: dict[int, np.ndarray] = {joint: d * BONE_LENGTHS[joint] for joint, d in _REST_DIRECTIONS.items()}
"""Rest bone vectors (parent to joint, metres) of the rotation-posed bones."""

THIGH = BONE_LENGTHS[[L_KNEE, R_KNEE]]
SHIN = BONE_LENGTHS[[L_ANKLE, R_ANKLE]]
FOOT = BONE_LENGTHS[[L_FOOT, R_FOOT]]
UPPER_ARM = BONE_LENGTHS[[L_ELBOW, R_ELBOW]]
FOREARM = BONE_LENGTHS[[L_WRIST, R_WRIST]]

ANKLE_HEIGHT = 0.08
"""Height (m) of a planted ankle; the foot joint (ball of the foot) then touches the floor."""
PLANTED_PITCH: np.ndarray = np.arcsin(ANKLE_HEIGHT / FOOT)
"""Downward pitch (rad) of each foot bone when the foot is flat on the floor (left, right)."""
HIP_WIDTH: np.ndarray = np.abs(np.array([REST_BONES[L_HIP][0], REST_BONES[R_HIP][0]]))
"""Lateral offset (m) of each hip from the pelvis; feet stand under the hips."""
LEG_REACH = 0.995
"""Fraction of the full leg length a leg may stretch to: a fully straight knee makes IK ill-conditioned."""
STAND_HEIGHT = float(ANKLE_HEIGHT - REST_BONES[L_HIP][1] + 0.985 * (THIGH[0] + SHIN[0]))
"""Pelvis height (m) of a relaxed stance: knees almost straight."""

SHOULDERS: np.ndarray = np.stack(
    [REST_BONES[L_COLLAR] + REST_BONES[L_SHOULDER], REST_BONES[R_COLLAR] + REST_BONES[R_SHOULDER]]
)
"""Shoulder joints (2, 3) in the chest frame (origin spine3, axes of the heading when upright)."""
HANDS_REST: np.ndarray = SHOULDERS + np.array([[0.04, -0.49, 0.03], [-0.04, -0.49, 0.03]])
"""Wrist targets (2, 3) of arms hanging relaxed at the sides, in the chest frame."""
ELBOWS_REST: np.ndarray = np.array([[0.3, 0.0, -1.0], [-0.3, 0.0, -1.0]])
"""Elbow pole directions (2, 3) of relaxed arms (elbows point back and a little out), chest frame."""
KNEES_REST: np.ndarray = np.array([[0.1, 0.0, 1.0], [-0.1, 0.0, 1.0]])
"""Knee pole directions (2, 3) in the pelvis frame: knees point forward, a little out."""
FEET_YAW_REST: np.ndarray = np.array([0.12, -0.12])
"""Toe-out angle (rad) of each foot about +Y relative to the heading (positive turns the toes left)."""

_Y = np.array([0.0, 1.0, 0.0])


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) of rotation vectors (..., 3) (axis times angle, radians); 0 is identity."""
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    axis = rotvec / np.maximum(angle, 1e-12)
    return np.concatenate([np.cos(angle / 2), np.sin(angle / 2) * axis], axis=-1)


def yaw_quat(yaw: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) turning by `yaw` radians about +Y (positive turns +Z towards +X, the left)."""
    half = np.asarray(yaw, dtype=np.float64)[..., None] / 2
    zeros = np.zeros_like(half)
    return np.concatenate([np.cos(half), zeros, np.sin(half), zeros], axis=-1)


def rotate_xz(xz: np.ndarray, yaw: np.ndarray | float) -> np.ndarray:
    """Ground-plane vectors (..., 2) as (x, z), turned by `yaw` about +Y like `yaw_quat`."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    x, z = xz[..., 0], xz[..., 1]
    return np.stack([x * cos + z * sin, -x * sin + z * cos], axis=-1)


@dataclass(frozen=True, eq=False)
class PoseTrack:
    """A motion as per-frame animation channels (T frames). Left is index 0, right index 1."""

    root_xz: np.ndarray
    """(T, 2) pelvis position on the ground plane (x, z), world."""
    yaw: np.ndarray
    """(T,) heading in radians about +Y; 0 faces +Z, positive turns left. Unwrapped (blends linearly)."""
    pelvis_height: np.ndarray
    """(T,) wanted pelvis height (m); lowered where a foot on the floor could not reach its target."""
    pelvis_tilt: np.ndarray
    """(T, 3) rotation vector of the pelvis in the heading frame: x leans forward, z right, y twists left."""
    spine: np.ndarray
    """(T, 3) rotation vector of the whole spine relative to the pelvis (shared by its three joints)."""
    neck: np.ndarray
    """(T, 3) rotation vector of the head relative to the chest."""
    hands: np.ndarray
    """(T, 2, 3) wrist targets in the chest frame (origin spine3)."""
    elbow_poles: np.ndarray
    """(T, 2, 3) directions the elbows point to, chest frame."""
    ankles: np.ndarray
    """(T, 2, 3) ankle targets, world; y = ANKLE_HEIGHT is a foot flat on the floor."""
    knee_poles: np.ndarray
    """(T, 2, 3) directions the knees point to, pelvis frame."""
    foot_yaw: np.ndarray
    """(T, 2) heading of each foot (rad), world: a planted foot keeps its heading while the body turns."""
    foot_pitch: np.ndarray
    """(T, 2) downward pitch of each foot bone (rad); PLANTED_PITCH puts the ball of the foot on the floor."""

    def __post_init__(self) -> None:
        frames = len(self.yaw)
        for field in fields(self):
            array = getattr(self, field.name)
            if len(array) != frames:
                raise ValueError(f"PoseTrack.{field.name} has {len(array)} frames, yaw has {frames}")

    def __len__(self) -> int:
        return len(self.yaw)

    @classmethod
    def neutral(cls, frames: int) -> PoseTrack:
        """Standing relaxed at the origin, facing +Z, for `frames` frames."""
        return cls(
            root_xz=np.zeros((frames, 2)),
            yaw=np.zeros(frames),
            pelvis_height=np.full(frames, STAND_HEIGHT),
            pelvis_tilt=np.zeros((frames, 3)),
            spine=np.zeros((frames, 3)),
            neck=np.zeros((frames, 3)),
            hands=np.broadcast_to(HANDS_REST, (frames, 2, 3)).copy(),
            elbow_poles=np.broadcast_to(ELBOWS_REST, (frames, 2, 3)).copy(),
            ankles=np.broadcast_to(neutral_ankles(), (frames, 2, 3)).copy(),
            knee_poles=np.broadcast_to(KNEES_REST, (frames, 2, 3)).copy(),
            foot_yaw=np.broadcast_to(FEET_YAW_REST, (frames, 2)).copy(),
            foot_pitch=np.broadcast_to(PLANTED_PITCH, (frames, 2)).copy(),
        )

    def moved(self, x: float, z: float, yaw: float) -> PoseTrack:
        """This track (made at the origin facing +Z) started at ground point (x, z), heading `yaw`."""
        origin = np.array([x, z])
        ankles = self.ankles.copy()
        ankles[..., [0, 2]] = rotate_xz(self.ankles[..., [0, 2]], yaw) + origin
        return replace(
            self,
            root_xz=rotate_xz(self.root_xz, yaw) + origin,
            yaw=self.yaw + yaw,
            ankles=ankles,
            foot_yaw=self.foot_yaw + yaw,
        )

    def frames(self, start: int, stop: int) -> PoseTrack:
        """Frames [start, stop) of the track."""
        return PoseTrack(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})

    def end_state(self) -> tuple[float, float, float]:
        """(x, z, yaw) of the last frame: where the next action starts."""
        x, z = self.root_xz[-1]
        return float(x), float(z), float(self.yaw[-1])

    @staticmethod
    def blend(first: PoseTrack, second: PoseTrack, weight: np.ndarray) -> PoseTrack:
        """Per-frame mix (1 - w) * first + w * second of two tracks of the same length; w is (T,)."""

        def mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            w = weight.reshape((-1,) + (1,) * (a.ndim - 1))
            return (1 - w) * a + w * b

        return PoseTrack(
            **{f.name: mix(getattr(first, f.name), getattr(second, f.name)) for f in fields(first)}
        )

    @staticmethod
    def concatenate(parts: list[PoseTrack], overlaps: list[int]) -> PoseTrack:
        """Play the parts one after the other, cross-fading part k into part k+1 over `overlaps[k]` frames
        (a smoothstep weight), so a motion flows from one action into the next without a jump."""
        if len(overlaps) != len(parts) - 1:
            raise ValueError(f"{len(parts)} parts need {len(parts) - 1} overlaps, got {len(overlaps)}")
        result = parts[0]
        for part, overlap in zip(parts[1:], overlaps, strict=True):
            overlap = min(overlap, len(result), len(part))
            head = result.frames(0, len(result) - overlap)
            weight = smoothstep(np.linspace(0.0, 1.0, overlap + 2)[1:-1])
            mixed = PoseTrack.blend(
                result.frames(len(result) - overlap, len(result)), part.frames(0, overlap), weight
            )
            tail = part.frames(overlap, len(part))
            result = PoseTrack(
                **{
                    f.name: np.concatenate(
                        [getattr(head, f.name), getattr(mixed, f.name), getattr(tail, f.name)]
                    )
                    for f in fields(result)
                }
            )
        return result


def neutral_ankles() -> np.ndarray:
    """Ankle positions (2, 3) of the relaxed stance at the origin facing +Z: under the hips, on the floor."""
    return np.array([[HIP_WIDTH[0], ANKLE_HEIGHT, 0.0], [-HIP_WIDTH[1], ANKLE_HEIGHT, 0.0]])


def smoothstep(x: np.ndarray) -> np.ndarray:
    """3x^2 - 2x^3 on [0, 1], clamped: an ease-in-out with zero slope at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _softmin(values: list[np.ndarray], sharpness: float = 0.004) -> np.ndarray:
    """A smooth minimum that never exceeds the true minimum (log-sum-exp), so the pelvis height does not kink
    when the binding constraint switches from one foot to the other."""
    stacked = np.stack(values)
    low = stacked.min(axis=0)
    return low - sharpness * np.log(np.exp(-(stacked - low) / sharpness).sum(axis=0))


def two_bone_ik(
    base: np.ndarray,
    target: np.ndarray,
    pole: np.ndarray,
    upper: float,
    lower: float,
    reach: float = LEG_REACH,
) -> tuple[np.ndarray, np.ndarray]:
    """Middle and end joints (T, 3) of a two-bone limb from `base` towards `target`, bent towards `pole`.

    The bones keep exactly the lengths `upper` and `lower`; an unreachable target is approached along the
    straight line (the limb stretches to `reach` of its length).
    """
    offset = target - base
    distance = np.linalg.norm(offset, axis=-1, keepdims=True)
    along = offset / np.maximum(distance, 1e-9)
    distance = np.clip(distance, abs(upper - lower) + 1e-3, reach * (upper + lower))
    # The middle joint lies `a` along the base-target line and `h` off it, towards the pole.
    a = (upper**2 - lower**2 + distance**2) / (2 * distance)
    h = np.sqrt(np.maximum(upper**2 - a**2, 0.0))
    side = pole - (pole * along).sum(-1, keepdims=True) * along
    # A pole parallel to the limb leaves the bend direction undefined: fall back to a fixed perpendicular.
    fallback = np.cross(along, np.array([1.0, 0.0, 0.0]))
    degenerate = np.linalg.norm(side, axis=-1, keepdims=True) < 1e-6
    side = np.where(degenerate, fallback, side)
    side = side / np.maximum(np.linalg.norm(side, axis=-1, keepdims=True), 1e-12)
    middle = base + a * along + h * side
    end = base + distance * along
    return middle, end


def _pelvis_height(track: PoseTrack, hips_at_zero: np.ndarray) -> np.ndarray:
    """The wanted pelvis height, lowered so that every foot whose target is on (or near) the floor reaches it.

    A foot counts with weight 1 when its ankle (heel down) or its toes (heel up) are at floor level, fading to
    0 at 5 cm above it: a foot about to land pulls the pelvis down smoothly instead of on the frame it lands.
    """
    limits = [track.pelvis_height]
    for side in (0, 1):
        reach = LEG_REACH * (THIGH[side] + SHIN[side])
        ankle = track.ankles[:, side]
        hip = hips_at_zero[:, side]
        horizontal = np.linalg.norm(ankle[:, [0, 2]] - hip[:, [0, 2]], axis=-1)
        vertical = np.sqrt(np.maximum(reach**2 - horizontal**2, 0.0))
        highest = ankle[:, 1] - hip[:, 1] + vertical
        toe = ankle[:, 1] - FOOT[side] * np.sin(track.foot_pitch[:, side])
        weight = np.clip(1.0 - np.minimum(ankle[:, 1] - ANKLE_HEIGHT, toe) / 0.05, 0.0, 1.0)
        limits.append(highest + (1.0 - weight) * 10.0)
    return _softmin(limits)


def solve_joints(track: PoseTrack) -> np.ndarray:
    """Joint positions (T, 22, 3) in metres, Y up, of a pose track, with the target skeleton's bones."""
    frames = len(track)
    joints = np.zeros((frames, NUM_JOINTS, 3))
    heading = yaw_quat(track.yaw)
    pelvis = qmul(heading, rotvec_to_quat(track.pelvis_tilt))

    hips_at_zero = np.stack([qrot(pelvis, REST_BONES[L_HIP]), qrot(pelvis, REST_BONES[R_HIP])], axis=1)
    hips_at_zero[..., [0, 2]] += track.root_xz[:, None]
    height = _pelvis_height(track, hips_at_zero)
    root = np.stack([track.root_xz[:, 0], height, track.root_xz[:, 1]], axis=-1)
    joints[:, PELVIS] = root
    joints[:, [L_HIP, R_HIP]] = hips_at_zero + height[:, None, None] * _Y

    # Spine: the three spine joints share the bend equally, so their product is `track.spine`.
    spine_step = rotvec_to_quat(track.spine / 3.0)
    orientation = pelvis
    parent = PELVIS
    for joint in (SPINE1, SPINE2, SPINE3):
        joints[:, joint] = joints[:, parent] + qrot(orientation, REST_BONES[joint])
        orientation = qmul(orientation, spine_step)
        parent = joint
    chest = orientation
    joints[:, NECK] = joints[:, SPINE3] + qrot(chest, REST_BONES[NECK])
    joints[:, HEAD] = joints[:, NECK] + qrot(qmul(chest, rotvec_to_quat(track.neck)), REST_BONES[HEAD])

    # Arms: the collar lifts the shoulder when the hand goes above it and brings it forward when the hand
    # reaches forward, as a real shoulder girdle does; then IK from the shoulder to the wrist target.
    for side, (collar, shoulder, elbow, wrist) in enumerate(
        ((L_COLLAR, L_SHOULDER, L_ELBOW, L_WRIST), (R_COLLAR, R_SHOULDER, R_ELBOW, R_WRIST))
    ):
        joints[:, collar] = joints[:, SPINE3] + qrot(chest, REST_BONES[collar])
        hand = track.hands[:, side]
        sign = 1.0 if side == 0 else -1.0
        lift = 0.35 * np.clip((hand[:, 1] - SHOULDERS[side, 1]) / 0.45, 0.0, 1.0)
        reach_forward = 0.3 * np.clip(hand[:, 2] / 0.5, 0.0, 1.0)
        girdle = rotvec_to_quat(np.stack([np.zeros(frames), -sign * reach_forward, sign * lift], axis=-1))
        joints[:, shoulder] = joints[:, collar] + qrot(qmul(chest, girdle), REST_BONES[shoulder])
        target = joints[:, SPINE3] + qrot(chest, hand)
        pole = qrot(chest, track.elbow_poles[:, side])
        joints[:, elbow], joints[:, wrist] = two_bone_ik(
            joints[:, shoulder], target, pole, UPPER_ARM[side], FOREARM[side], reach=0.999
        )

    # Legs: IK from the hip to the ankle target, then the foot bone from its heading and pitch.
    for side, (hip, knee, ankle, foot) in enumerate(
        ((L_HIP, L_KNEE, L_ANKLE, L_FOOT), (R_HIP, R_KNEE, R_ANKLE, R_FOOT))
    ):
        pole = qrot(pelvis, track.knee_poles[:, side])
        joints[:, knee], joints[:, ankle] = two_bone_ik(
            joints[:, hip], track.ankles[:, side], pole, THIGH[side], SHIN[side]
        )
        yaw = track.foot_yaw[:, side]
        # A foot cannot point into the floor: its pitch is capped where the ball of the foot touches it.
        lowest = np.arcsin(np.clip(joints[:, ankle, 1] / FOOT[side], -1.0, 1.0))
        pitch = np.minimum(track.foot_pitch[:, side], lowest)
        direction = np.stack(
            [np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)], axis=-1
        )
        joints[:, foot] = joints[:, ankle] + FOOT[side] * direction
    return joints
