"""`hmu train`: train the backbone's parts on a HumanML3D-layout folder and write a model folder.

`all` trains the RVQ, the masked transformer, the residual transformer and the length estimator in that
order and writes one model folder. A single part trains that part only: with `--init` the other parts come
from the given model (so `hmu train mask --init M --out M` replaces just the masked transformer). Without
`--init` only `rvq` and `length` can train alone (the transformers learn a trained RVQ's codes); the other
parts are then left at their seeded initialisation and listed as untrained in the provenance.

Progress is kept in a work folder (default `<out>.work`): rerunning the same command after an interruption
resumes every part from its last checkpoint, and a part already finished is only re-evaluated.
A summary is printed and written to `<work>/report.json` (metrics, steps, wall times).

    hmu train all --data data/embedded --out models/small          # the small model, <= 10 min on 2 cores
    hmu train all --data data/embedded --split kw_splits/train_val-wo-violence.txt --out models/retain
    hmu train mask --data data/embedded --init models/small --out models/small-mask2 --steps 2000
    hmu train all --data dataset/HumanML3D --config published --device cuda --out models/momask-hml
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from benchmark.errors import HMUError

logger = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  hmu train all --data data/embedded --out models/small
  hmu train all --data data/embedded --split kw_splits/train_val-wo-violence.txt --out models/retain
  hmu train mask --data data/embedded --init models/small --out models/small --steps 2000
  hmu train rvq --data data/embedded --out /tmp/rvq-only --steps 50 --work /tmp/rvq-work
  hmu train all --data dataset/HumanML3D --config published --device cuda --out models/hml
"""

CHOICES = ("rvq", "mask", "residual", "length", "all")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the text-to-motion backbone (one part or all) and write a model folder",
        description="Train the backbone's parts on a dataset in the HumanML3D layout and write a model\n"
        "folder. 'all' trains rvq, mask, residual and length in sequence. Resumable: rerun the same\n"
        "command after an interruption and every part continues from its last checkpoint.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("part", choices=CHOICES, help="the part to train, or all of them in sequence")
    parser.add_argument("--data", required=True, type=Path, metavar="DIR", help="the dataset folder")
    parser.add_argument(
        "--split",
        default="train",
        metavar="NAME|FILE",
        help="training ids: a split of the folder or an id list file, e.g. a retain set (default train)",
    )
    parser.add_argument(
        "--val-split",
        default="val",
        metavar="NAME|FILE",
        help="ids for the validation metrics, or 'none' (default val)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="the model folder to write")
    parser.add_argument(
        "--config",
        choices=("small", "published"),
        help="model size and training recipe when training from scratch (default small); with --init the "
        "model's own sizes are kept and this only picks the recipe",
    )
    parser.add_argument(
        "--init",
        type=Path,
        metavar="DIR",
        help="start from this model folder (fine-tuning, or replacing a part)",
    )
    parser.add_argument(
        "--work", type=Path, metavar="DIR", help="checkpoints and report (default <out>.work)"
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, metavar="N", help="optimiser steps of each part trained")
    length.add_argument("--epochs", type=int, metavar="N", help="epochs of each part trained")
    parser.add_argument("--lr", type=float, metavar="LR", help="peak learning rate of each part trained")
    parser.add_argument("--batch-size", type=int, metavar="B", help="batch size of each part trained")
    parser.add_argument("--device", default="cpu", metavar="DEV", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--no-amp", action="store_true", help="train in float32 on CUDA too")
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads of torch (default: torch's choice, one per core); 1 is faster on a CPU busy with "
        "other processes",
    )
    parser.add_argument("--seed", type=int, metavar="S", help="seed (default: the recipe's, 3407)")
    parser.add_argument(
        "--encoder",
        choices=("minilm", "clip-vit-b32"),
        help="text encoder (default: minilm, or the --init model's)",
    )
    parser.add_argument("--encoder-weights", type=Path, metavar="FILE", help="CLIP ViT-B/32 weights file")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_train)


def _settings(part: str, args: argparse.Namespace) -> Any:
    import dataclasses

    from benchmark.training import TrainSettings

    preset = args.config or "small"
    settings = TrainSettings.published(part) if preset == "published" else TrainSettings.small(part)
    changes: dict[str, Any] = {
        "device": args.device,
        "amp": not args.no_amp,
        "progress": not args.no_progress,
    }
    if args.steps is not None:
        changes.update(steps=args.steps, epochs=None)
    if args.epochs is not None:
        changes.update(steps=None, epochs=args.epochs)
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.lr is not None:
        changes["lr"] = args.lr
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    return dataclasses.replace(settings, **changes)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_safe(metrics: dict[str, float]) -> dict[str, float | None]:
    """NaN (a metric without val data) becomes null: model.json is strict JSON."""
    return {name: _finite_or_none(value) for name, value in metrics.items()}


def _check_out(args: argparse.Namespace) -> None:
    out = args.out
    if out.exists() and not out.is_dir():
        raise HMUError(f"--out {out}: exists and is not a folder")
    in_place = args.init is not None and out.resolve() == args.init.resolve()
    if out.is_dir() and any(out.iterdir()) and not (in_place or args.force):
        raise HMUError(f"--out {out}: folder exists and is not empty (pass --force to replace it)")


def run_train(args: argparse.Namespace) -> int:
    import torch

    from benchmark.backbone.config import BackboneConfig
    from benchmark.backbone.generation import text_encoder_for
    from benchmark.backbone.model import Backbone, DatasetInfo, load_model, model_hash, save_model
    from benchmark.text import build_text_encoder
    from benchmark.training import MODEL_PARTS, PARTS, MotionData, TextFeatureCache
    from benchmark.training.loops import data_record, part_record, train_part

    started = time.perf_counter()
    if args.threads is not None:
        if args.threads < 1:
            raise HMUError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    parts = list(PARTS) if args.part == "all" else [args.part]
    settings = {part: _settings(part, args) for part in parts}
    _check_out(args)
    if args.init is None and "rvq" not in parts and {"mask", "residual"} & set(parts):
        raise HMUError(
            f"'hmu train {args.part}' learns the codes of a trained RVQ: pass a model with --init "
            "(e.g. from 'hmu train rvq'), or train 'all'"
        )
    work = args.work if args.work is not None else args.out.with_name(args.out.name + ".work")
    val_split = None if args.val_split == "none" else args.val_split

    # The model to train: the --init folder, or a fresh one initialised under the seed.
    parent: str | None = None
    provenance_parts: dict[str, Any] = {}
    if args.init is not None:
        loaded = load_model(args.init, device=args.device)
        backbone, card = loaded.backbone, loaded.card
        if backbone.length_estimator is None and "length" in parts:
            backbone = _with_length_estimator(backbone, settings["length"].seed)
        parent = model_hash(args.init)
        provenance_parts = dict(card.provenance.get("parts", {}))
        recorded = str(card.text_encoder.get("encoder"))
        if args.encoder is not None and args.encoder != recorded:
            raise HMUError(
                f"--init {args.init} conditions on the {recorded} text encoder, not {args.encoder}"
            )
        encoder = text_encoder_for(card, args.device, clip_weights=args.encoder_weights)
        mean, std = backbone.mean.cpu().numpy(), backbone.std.cpu().numpy()
        data = MotionData.open(args.data, args.split, val_split, mean=mean, std=std)
        if data.folder.metadata.feature_dim != card.dataset.feature_dim:
            raise HMUError(
                f"--data {args.data}: {data.folder.metadata.feature_dim}-d features, the --init model makes "
                f"{card.dataset.feature_dim}-d ones"
            )
        dataset = card.dataset
    else:
        options: dict[str, Any] = {"device": args.device}
        if args.encoder_weights is not None:
            options["weights"] = args.encoder_weights
        encoder = build_text_encoder(args.encoder or "minilm", **options)
        data = MotionData.open(args.data, args.split, val_split)
        metadata = data.folder.metadata
        dataset = DatasetInfo(name=metadata.name, fps=metadata.fps, feature_dim=metadata.feature_dim)
        config = BackboneConfig.published() if args.config == "published" else BackboneConfig.small()
        config = _with_cond_dim(config, encoder.dim)
        torch.manual_seed(settings[parts[0]].seed)
        backbone = Backbone(config, data.mean, data.std)
        backbone = backbone.to(torch.device(args.device))

    texts = TextFeatureCache(encoder)
    if any(part != "rvq" for part in parts):
        texts.precompute(data.captions(data.train_ids + data.val_ids), progress=not args.no_progress)
    setup_seconds = time.perf_counter() - started  # text encoder, data, model and caption features

    if "rvq" in parts and args.init is not None and not {"mask", "residual"} <= set(parts):
        logger.warning(
            "retraining the RVQ of %s alone: its transformers learnt the old codes; retrain them too",
            args.init,
        )

    data_facts = data_record(data)
    report: dict[str, Any] = {
        "setup": {"captions_encoded": len(texts), "seconds": setup_seconds},
        "parts": {},
    }
    for part in parts:
        result = train_part(part, backbone, data, texts, settings[part], work)
        record = part_record(part, result, settings[part], data_facts, backbone, texts)
        provenance_parts[MODEL_PARTS[part]] = record
        report["parts"][part] = {
            "steps": result.steps,
            "resumed_from": result.resumed_from,
            "seconds": result.seconds,
            "seconds_per_step": _finite_or_none(result.seconds_per_step),
            "metrics": _json_safe(result.metrics),
        }

    untrained = [name for name in backbone.parts() if name not in provenance_parts]
    provenance: dict[str, Any] = {
        "kind": "fine-tuned" if parent is not None else "trained",
        "recipe": args.config or "small",
        "parts": provenance_parts,
    }
    if parent is not None:
        provenance["parent"] = parent
    if untrained:
        provenance["untrained_parts"] = untrained
        logger.warning("%s: parts left untrained (seeded initialisation): %s", args.out, ", ".join(untrained))
    in_place = args.init is not None and args.out.resolve() == args.init.resolve()
    save_model(
        backbone.eval(),
        args.out,
        text_encoder_identity=texts.identity,
        dataset=dataset,
        provenance=provenance,
        overwrite=in_place or args.force,
    )
    report["model"] = str(args.out)
    report["model_sha256"] = model_hash(args.out)
    report["seconds"] = time.perf_counter() - started
    work.mkdir(parents=True, exist_ok=True)
    (work / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    _print_report(report)
    return 0


def _with_cond_dim(config: Any, dim: int) -> Any:
    """`config` with the text feature size of the encoder (the small config is sized for MiniLM's 384)."""
    import dataclasses

    return dataclasses.replace(
        config,
        mask=dataclasses.replace(config.mask, cond_dim=dim),
        residual=dataclasses.replace(config.residual, cond_dim=dim),
        length=dataclasses.replace(config.length, cond_dim=dim),
    )


def _with_length_estimator(backbone: Any, seed: int) -> Any:
    """A copy of a backbone that lacks a length estimator, with a fresh one (to train it)."""
    import torch

    from benchmark.backbone.model import Backbone

    torch.manual_seed(seed)
    fresh = Backbone(backbone.config, backbone.mean.cpu(), backbone.std.cpu(), length_estimator=True)
    for name, module in backbone.parts().items():
        getattr(fresh, name).load_state_dict(module.state_dict())
    return fresh.to(backbone.mean.device)


def _print_report(report: dict[str, Any]) -> None:
    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.4g}"

    setup = report["setup"]
    print(
        f"setup (text encoder, data, {setup['captions_encoded']} caption features): {setup['seconds']:.1f} s"
    )
    for part, entry in report["parts"].items():
        metrics = ", ".join(f"{name} {number(value)}" for name, value in entry["metrics"].items())
        print(
            f"{part}: {entry['steps']} steps, {entry['seconds']:.1f} s "
            f"({number(entry['seconds_per_step'])} s/step); {metrics}"
        )
    print(f"model: {report['model']} (sha256 {report['model_sha256'][:16]}), total {report['seconds']:.1f} s")
