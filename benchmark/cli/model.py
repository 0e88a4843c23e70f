"""`hmu model`: inspect model folders and convert them from and to the official MoMask checkpoint layout.

hmu model import-momask --checkpoints checkpoints --out models/momask-t2m
hmu model export-momask --model models/momask-t2m --checkpoints exported
hmu model info models/momask-t2m
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLES = """\
examples:
  hmu model import-momask --checkpoints checkpoints --out models/momask-t2m
  hmu model import-momask --checkpoints checkpoints --out models/momask-t2m --clip-weights ~/ViT-B-32.pt
  hmu model export-momask --model models/momask-t2m --checkpoints exported --dataset t2m
  hmu model info models/momask-t2m
"""


def _add_names(parser: argparse.ArgumentParser) -> None:
    from_names = parser.add_argument_group("official folder and file names (defaults: the released model)")
    # Defaults are spelled out here (not imported) so that `hmu --help` never imports torch.
    from_names.add_argument("--dataset", default="t2m", help="MoMask's dataset_name folder (default t2m)")
    from_names.add_argument("--rvq", default="rvq_nq6_dc512_nc512_noshare_qdp0.2", metavar="NAME")
    from_names.add_argument("--mask", default="t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns", metavar="NAME")
    from_names.add_argument(
        "--residual", default="tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw", metavar="NAME"
    )
    from_names.add_argument(
        "--length-estimator",
        default="length_estimator",
        metavar="NAME",
        help="folder of the length estimator; 'none' for no estimator (default length_estimator)",
    )
    from_names.add_argument("--which-rvq", default="net_best_fid.tar", metavar="FILE")
    from_names.add_argument("--which-mask", default="latest.tar", metavar="FILE")
    from_names.add_argument("--which-residual", default="net_best_fid.tar", metavar="FILE")
    from_names.add_argument("--which-length-estimator", default="finest.tar", metavar="FILE")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "model",
        help="inspect model folders; import and export official MoMask checkpoints",
        description="Model folders are what methods receive and return (model.json, part weights,\n"
        "mean.npy, std.npy). These commands convert the official MoMask checkpoint folders into one\n"
        "and back, and print a folder's card and content hash.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    importer = verbs.add_parser(
        "import-momask",
        help="convert official MoMask checkpoint folders into a model folder",
        description="Read <checkpoints>/<dataset>/{<rvq>,<mask>,<residual>,<length-estimator>} (opt.txt,\n"
        "model/*.tar, the RVQ's meta/mean.npy and std.npy) strictly and write a model folder. The text\n"
        "encoder is recorded as CLIP ViT-B/32 with the sha256 of OpenAI's released ViT-B-32.pt, or of the\n"
        "file given with --clip-weights; generation later demands exactly those weights.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    importer.add_argument(
        "--checkpoints", required=True, type=Path, metavar="DIR", help="MoMask's checkpoints/"
    )
    importer.add_argument("--out", required=True, type=Path, metavar="DIR", help="the model folder to write")
    _add_names(importer)
    importer.add_argument(
        "--clip-weights",
        type=Path,
        metavar="FILE",
        help="record this CLIP ViT-B/32 weights file (its sha256) instead of OpenAI's released file",
    )
    importer.add_argument("--fps", type=float, help="frame rate to record (default: the dataset's)")
    importer.add_argument(
        "--trust-pickles",
        action="store_true",
        help="allow .tar files holding arbitrary Python objects (only for files you trust)",
    )
    importer.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    importer.set_defaults(func=run_import)

    exporter = verbs.add_parser(
        "export-momask",
        help="write a model folder in the official MoMask checkpoint layout",
        description="Write <checkpoints>/<dataset>/{<rvq>,<mask>,<residual>[,<length-estimator>]} with\n"
        "opt.txt files, model/*.tar files with MoMask's top-level keys and the RVQ's meta/.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    exporter.add_argument(
        "--model", required=True, type=Path, metavar="DIR", help="the model folder to export"
    )
    exporter.add_argument("--checkpoints", required=True, type=Path, metavar="DIR", help="where to write")
    _add_names(exporter)
    exporter.add_argument("--overwrite", action="store_true", help="write into existing part folders")
    exporter.set_defaults(func=run_export)

    info = verbs.add_parser("info", help="print a model folder's card and content hash")
    info.add_argument("model", type=Path, metavar="DIR", help="the model folder")
    info.set_defaults(func=run_info)


def _names(args: argparse.Namespace):  # -> MomaskNames (imported lazily: torch)
    from benchmark.backbone.momask_import import MomaskNames

    return MomaskNames(
        rvq=args.rvq,
        mask=args.mask,
        residual=args.residual,
        which_rvq=args.which_rvq,
        which_mask=args.which_mask,
        which_residual=args.which_residual,
        length_estimator=None if args.length_estimator.lower() == "none" else args.length_estimator,
        which_length_estimator=args.which_length_estimator,
    )


def run_import(args: argparse.Namespace) -> int:
    from benchmark.backbone.model import model_hash
    from benchmark.backbone.momask_import import import_momask, official_clip_identity

    identity = None
    if args.clip_weights is not None:
        from benchmark.text.encoders import build_text_encoder

        # Building the encoder proves the file is a usable CLIP ViT-B/32 before it is recorded.
        identity = build_text_encoder("clip-vit-b32", weights=args.clip_weights).identity()
        if identity["weights_sha256"] != official_clip_identity()["weights_sha256"]:
            print(
                f"note: {args.clip_weights} (sha256 {identity['weights_sha256']}) is not OpenAI's "
                "released file; generation will demand this file"
            )
    card = import_momask(
        args.checkpoints,
        args.out,
        dataset=args.dataset,
        names=_names(args),
        text_encoder_identity=identity,
        fps=args.fps,
        trusted=args.trust_pickles,
        overwrite=args.overwrite,
    )
    estimator = "with" if card.has_length_estimator else "without"
    print(
        f"wrote {args.out} ({card.dataset.name}, {estimator} length estimator), hash {model_hash(args.out)}"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from benchmark.backbone.momask_import import export_momask

    files = export_momask(
        args.model, args.checkpoints, dataset=args.dataset, names=_names(args), overwrite=args.overwrite
    )
    for part, path in files.items():
        print(f"{part:22s} {path}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from benchmark.backbone.model import model_hash, read_model_card

    card = read_model_card(args.model)
    print(json.dumps({"hash": model_hash(args.model), **card.to_dict()}, indent=2, sort_keys=True))
    return 0
