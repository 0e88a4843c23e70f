"""Quaternion helpers in numpy. Quaternions are (w, x, y, z) in the last axis; every function broadcasts
over the leading axes.

    >>> import numpy as np
    >>> q = quat_from_axis_angle(np.array([0.0, 1.0, 0.0]), np.pi / 2)   # 90 degrees about +Y
    >>> np.round(qrot(q, np.array([0.0, 0.0, 1.0])), 6)                   # +Z turns into +X
    array([1., 0., 0.])
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def qnormalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions."""
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def qmul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hamilton product q*r (apply r first, then q)."""
    w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def qinv(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion (its conjugate)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate the vectors v (..., 3) by the unit quaternions q (..., 4)."""
    w = q[..., :1]
    u = q[..., 1:]
    uv = np.cross(u, v)
    return v + 2.0 * (w * uv + np.cross(u, uv))


def qbetween(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """The shortest-arc rotation taking the direction of v0 to the direction of v1.

    Computed as normalize([|v0||v1| + v0.v1, v0 x v1]), the formula of the original extraction.
    For opposite vectors that formula is 0/0; those get a half turn about an axis perpendicular to v0.
    """
    v0, v1 = np.broadcast_arrays(np.asarray(v0, dtype=np.float64), np.asarray(v1, dtype=np.float64))
    lengths = np.sqrt((v0**2).sum(-1) * (v1**2).sum(-1))
    q = np.concatenate([(lengths + (v0 * v1).sum(-1))[..., None], np.cross(v0, v1)], axis=-1)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    opposite = norm[..., 0] <= _EPS * lengths
    if np.any(opposite):
        a = v0[opposite]
        # Cross with the coordinate axis least aligned with a: never parallel to it.
        helper = np.eye(3)[np.argmin(np.abs(a), axis=-1)]
        axis = np.cross(a, helper)
        q[opposite] = np.concatenate([np.zeros((len(a), 1)), axis], axis=-1)
        norm[opposite] = np.linalg.norm(q[opposite], axis=-1, keepdims=True)
    return q / norm


def quat_from_axis_angle(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotation of `angle` radians about `axis` (..., 3), which need not be unit length."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = 0.5 * np.asarray(angle, dtype=np.float64)[..., None]
    vector = np.sin(half) * axis
    return np.concatenate([np.broadcast_to(np.cos(half), vector.shape[:-1] + (1,)), vector], axis=-1)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of unit quaternions (..., 4); matrix @ v rotates a column vector v."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternions with w >= 0 of rotation matrices (..., 3, 3).

    Each quaternion is computed from its largest component (Shepperd's method), which stays accurate
    for every rotation, half turns included.
    """
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Row i of this symmetric matrix is 4*q_i*q for q = (w, x, y, z): any row with a large diagonal
    # entry (4*q_i^2) divided by its norm gives q accurately.
    wx, wy, wz = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    xy, xz, yz = m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2]
    squares = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1
    )
    rows = [
        [squares[..., 0], wx, wy, wz],
        [wx, squares[..., 1], xy, xz],
        [wy, xy, squares[..., 2], yz],
        [wz, xz, yz, squares[..., 3]],
    ]
    candidates = np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)
    best = np.argmax(squares, axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = qnormalize(q)
    return np.where(q[..., :1] < 0, -q, q)


def cont6d_from_matrix(m: np.ndarray) -> np.ndarray:
    """The continuous 6D representation: the first two columns of the matrix, [R[:, 0], R[:, 1]] (..., 6)."""
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def matrix_from_cont6d(d6: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from 6D vectors, orthonormalising the two columns (Gram-Schmidt)."""
    a, b = d6[..., :3], d6[..., 3:]
    c0 = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b - (c0 * b).sum(-1, keepdims=True) * c0
    c1 = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.stack([c0, c1, np.cross(c0, c1)], axis=-1)
