"""Benchmark: train the small backbone on the embedded dataset with `hmu train all` defaults, then check that
its generations follow the text.

Prints the wall time of each part and in all, the time per step, the RVQ reconstruction error (normalised
L1, joint position error in metres) and the token accuracies; then generates motions for a kick, a jump and a
walk prompt, prints simple descriptors of each (root travel, root rise, highest foot) and draws them as PNG
strips to look at. The machine's load average is printed before and after: other processes on the same
cores slow training down, and the numbers are only comparable at the same load.

    hmu data synth --out data/embedded                  # once
    python benchmarks/train_small.py --data data/embedded --preview /tmp/train_preview
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.backbone.generation import GenerationSettings, Prompt, generate_motions, text_encoder_for
from benchmark.backbone.model import load_model
from benchmark.cli.main import main as hmu
from benchmark.motion.features import joints_from_features
from benchmark.render import render_strip

PROMPTS = {
    "kick": "a person kicks with the right leg",
    "jump": "a person jumps forward",
    "walk": "a person walks forward",
}
FOOT_JOINTS = (10, 11)  # left and right foot in the 22-joint skeleton


def describe(features: np.ndarray) -> dict[str, float]:
    """Root travel on the floor, root rise above its starting height, and the highest foot above the lowest
    point of the feet, in metres: a walk travels, a jump rises, a kick lifts a foot."""
    joints = joints_from_features(features)
    root = joints[:, 0]
    travel = float(np.linalg.norm(root[-1, [0, 2]] - root[0, [0, 2]]))
    feet = joints[:, FOOT_JOINTS, 1]
    return {
        "travel_m": travel,
        "root_rise_m": float(root[:, 1].max() - root[0, 1]),
        "foot_height_m": float(feet.max() - feet.min()),
    }


def classify(numbers: dict[str, float]) -> str:
    """jump, kick, walk or ?, from `describe`'s numbers; thresholds sit between the embedded dataset's own
    jumps (root rise 0.13-0.33 m), kicks (foot 0.5-1.4 m, no rise) and walks (1.6-4.3 m in 6 s, feet low)."""
    if numbers["root_rise_m"] > 0.12:
        return "jump"
    if numbers["foot_height_m"] > 0.5:
        return "kick"
    if numbers["travel_m"] > 1.0:
        return "walk"
    return "?"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("data/embedded"), help="the embedded dataset")
    parser.add_argument("--out", type=Path, default=Path("/tmp/train_small/model"), help="model folder")
    parser.add_argument("--preview", type=Path, default=Path("/tmp/train_preview"), help="PNG folder")
    parser.add_argument("--repeats", type=int, default=3, help="motions drawn per prompt")
    parser.add_argument("--length", type=int, default=120, help="frames per generated motion")
    parser.add_argument("--resume", action="store_true", help="keep the work folder (default: start afresh)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    args = parser.parse_args()
    if not (args.data / "train.txt").is_file():
        parser.error(f"{args.data} is not a dataset folder; make one with: hmu data synth --out {args.data}")

    work = args.out.with_name(args.out.name + ".work")
    if not args.resume:
        shutil.rmtree(work, ignore_errors=True)
    load_before = os.getloadavg()
    started = time.perf_counter()
    command = ["train", "all", "--data", str(args.data), "--out", str(args.out), "--work", str(work)]
    command.append("--force")
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    status = hmu(command)
    total = time.perf_counter() - started
    load_after = os.getloadavg()
    if status != 0:
        return status
    report = json.loads((work / "report.json").read_text())

    def number(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    print(f"\n== training ({torch.get_num_threads()} torch threads, {os.cpu_count()} cores)")
    print(f"load before: {load_before[0]:.2f}; after (1/5/15 min): {' / '.join(map(number, load_after))}")
    setup = report["setup"]
    print(
        f"setup {setup['seconds']:.1f} s (text encoder, data, {setup['captions_encoded']} caption features)"
    )
    for part, entry in report["parts"].items():
        step = number(entry["seconds_per_step"])
        print(f"{part:16s} {entry['steps']} steps, {entry['seconds']:.1f} s, {step} s/step")
        for name, value in entry["metrics"].items():
            print(f"    {name:34s} {number(value, 4)}")
    print(f"total wall time of 'hmu train all' (text features, training, evaluation, saving): {total:.1f} s")

    loaded = load_model(args.out)
    encoder = text_encoder_for(loaded.card)
    prompts = [
        Prompt(id=name, text=text, length=args.length, repeats=args.repeats, seed=0)
        for name, text in PROMPTS.items()
    ]
    started = time.perf_counter()
    motions = generate_motions(loaded.backbone, encoder, prompts, GenerationSettings())
    print(f"\n== generation: {len(motions)} motions in {time.perf_counter() - started:.1f} s")
    args.preview.mkdir(parents=True, exist_ok=True)
    recognised = 0
    for prompt in prompts:
        for key in prompt.keys():
            features = motions[key]
            numbers = describe(features)
            looks_like = classify(numbers)
            recognised += looks_like == prompt.id
            path = render_strip(features, args.preview / f"{key.replace('/', '_')}.png", caption=prompt.text)
            shown = ", ".join(f"{name} {value:.2f}" for name, value in numbers.items())
            print(f"{key:7s} {shown}  looks like: {looks_like:5s} {path}")
    print(f"{recognised} of {len(motions)} motions look like what their prompt asks for")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
