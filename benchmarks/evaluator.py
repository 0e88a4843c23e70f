"""Benchmark: train the project's evaluator on the embedded dataset with the `hmu train-evaluator` defaults,
then check that it can grade.

Prints the training time (caption encoding included), the validation R-precision, and on the test split:
R-precision top-1/2/3 and MM-Dist of real motions against one of their captions in batches of 32 (chance:
1/32, 2/32, 3/32), FID of the test motions against themselves (0 up to rounding) and against the training
motions, and the held-out AUC of the concept classifier (`fit_concept_classifier`, violence ground truth) on
test motion embeddings. The load average is printed before and after: other processes on the same cores
slow training down, and times are only comparable at the same load.

    hmu data synth --out data/embedded                  # once
    python benchmarks/evaluator.py --data data/embedded --out /tmp/evaluator
    python benchmarks/evaluator.py --data data/embedded --threads 1    # fairer on a loaded 2-core machine
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.evaluator.check import check_evaluator
from benchmark.evaluator.tmr import TMRConfig, TrainEvaluatorSettings, train_evaluator


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("data/embedded"), help="the embedded dataset")
    parser.add_argument("--out", type=Path, default=Path("/tmp/evaluator"), help="evaluator folder to write")
    parser.add_argument("--epochs", type=int, help="override the default epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    settings = TrainEvaluatorSettings(seed=args.seed)
    if args.epochs is not None:
        settings = dataclasses.replace(settings, epochs=args.epochs)
    config = TMRConfig()
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} (1 min); torch threads {torch.get_num_threads()}")
    print(f"settings: {settings}\nconfig: {config}")

    began = time.perf_counter()
    evaluator = train_evaluator(args.data, settings, config, log=print)
    train_seconds = time.perf_counter() - began
    evaluator.save(args.out)
    parameters = sum(p.numel() for p in evaluator.model.parameters())
    print(f"trained {parameters:,} parameters in {train_seconds:.1f} s (caption encoding included)")
    val = evaluator.training.get("val_r_precision", {})
    print(f"val R-precision top-1/2/3: {val.get('1')} / {val.get('2')} / {val.get('3')}")

    check = check_evaluator(evaluator, HumanML3DFolder(args.data), test_split="test", train_split="train")
    print(check.summary())
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} (1 min); check took {check.seconds:.1f} s")
    if args.json is not None:
        record = {
            "train_seconds": round(train_seconds, 1),
            "parameters": parameters,
            "val_r_precision": val,
            "test_r_precision": {str(k): v for k, v in check.r_precision.items()},
            "mm_dist": check.mm_dist,
            "fid_self": check.fid_self,
            "fid_train_test": check.fid_train_test,
            "concept_auc": check.concept_auc,
            "concept_positives": check.concept_positives,
            "load_before": load_before[0],
            "load_after": load_after[0],
            "threads": torch.get_num_threads(),
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
