"""`hmu train-evaluator`: train the project's text-motion evaluator on a dataset folder and save it.

Trains `benchmark.evaluator.tmr` (MiniLM sentence features with a trainable head, a small motion
transformer, symmetric InfoNCE) on ground-truth motions only, writes the evaluator folder, and prints the
training time, the validation R-precision and, on the test split, the check of `benchmark.evaluator.check`
(R-precision, MM-Dist, FID, and the AUC of the concept classifier where the dataset has ground-truth labels).

    hmu train-evaluator --data data/embedded --out models/evaluator
    hmu train-evaluator --data dataset/HumanML3D --out models/evaluator-hml --epochs 100 --device cuda
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmark.errors import HMUError

EXAMPLES = """\
examples:
  hmu train-evaluator --data data/embedded --out models/evaluator
  hmu train-evaluator --data data/embedded --out /tmp/evaluator --epochs 2 --test-split none
  hmu train-evaluator --data data/embedded --out models/evaluator --threads 1     # on a busy machine
  hmu train-evaluator --data dataset/HumanML3D --out models/evaluator-hml --epochs 100 --device cuda
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-evaluator",
        help="train the text-motion evaluator (the embedding space of FID, R-precision, concept AUC)",
        description="Train the project's text-motion evaluator contrastively on the ground-truth motions\n"
        "of a dataset in the HumanML3D layout and write it as a folder (evaluator.json, weights.pt,\n"
        "mean.npy, std.npy). Prints the training time, the validation R-precision and a check on\n"
        "the test split.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, type=Path, metavar="DIR", help="the dataset folder")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="evaluator folder to write")
    parser.add_argument(
        "--split", default="train", metavar="NAME|FILE", help="training ids: a split or an id list file"
    )
    parser.add_argument(
        "--val-split", default="val", metavar="NAME|FILE", help="validation ids, or 'none' (default val)"
    )
    parser.add_argument(
        "--test-split", default="test", metavar="NAME|FILE", help="ids of the final check, or 'none'"
    )
    parser.add_argument(
        "--concept",
        default="violence",
        help="ground-truth concept (labels.jsonl) the check's classifier separates (default violence)",
    )
    parser.add_argument("--epochs", type=int, help="passes over the training motions")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches and crops")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads (default: torch's choice, one per core); on a machine shared with other jobs "
        "1 avoids threads waiting on each other and can be several times faster",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from benchmark.data.humanml3d import HumanML3DFolder
    from benchmark.evaluator.check import check_evaluator
    from benchmark.evaluator.tmr import TrainEvaluatorSettings, train_evaluator

    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise HMUError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    settings = TrainEvaluatorSettings(
        split=args.split,
        val_split=None if args.val_split == "none" else args.val_split,
        seed=args.seed,
        device=args.device,
    )
    if args.epochs is not None:
        settings = dataclasses.replace(settings, epochs=args.epochs)
    began = time.perf_counter()
    evaluator = train_evaluator(args.data, settings, log=print)
    evaluator.save(args.out)
    print(f"trained in {time.perf_counter() - began:.1f} s; wrote {args.out}")
    val = evaluator.training.get("val_r_precision")
    if val is not None:
        print(f"val R-precision top-1/2/3: {val['1']:.3f} / {val['2']:.3f} / {val['3']:.3f}")
    if args.test_split != "none":
        check = check_evaluator(
            evaluator, HumanML3DFolder(args.data), test_split=args.test_split, concept=args.concept
        )
        print(check.summary())
        if check.concept_auc is None and args.concept:
            print(f"concept classifier: skipped (no labels.jsonl or too few '{args.concept}' test motions)")
    return 0
