"""Time the motion representation and the text encoders on this machine.

    .venv/bin/python benchmarks/motion_and_text.py [--shared ../shared]

Prints one line per figure; BENCHMARKS.md records them with the date and the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = parser.parse_args()

    from benchmark.motion.features import features_from_joints, joints_from_features
    from benchmark.text import build_text_encoder

    reference = args.shared / "data" / "humanml3d-reference"
    joints = np.load(reference / "new_joints" / "012314.npy")
    features = np.load(reference / "new_joint_vecs" / "012314.npy")
    extract = median_seconds(lambda: features_from_joints(joints), 30)
    recover = median_seconds(lambda: joints_from_features(features), 30)
    print(f"features_from_joints, {len(joints)} frames: {1e3 * extract:.1f} ms")
    print(f"joints_from_features, {len(features)} frames: {1e3 * recover:.2f} ms")

    captions = [f"a person kicks with the right leg {i} times then walks forward" for i in range(100)]
    for name, options in (("minilm", {}), ("clip-vit-b32", {"random_weights": True})):
        start = time.perf_counter()
        encoder = build_text_encoder(name, **options)
        load = time.perf_counter() - start
        encoder.encode(captions[:4])  # warm-up
        seconds = median_seconds(lambda encoder=encoder: encoder.encode(captions), 5)
        print(f"text encoder {name}: load {load:.1f} s, 100 captions {seconds:.2f} s")


if __name__ == "__main__":
    main()
