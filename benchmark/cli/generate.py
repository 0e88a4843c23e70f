"""`hmu generate`: motions for a prompt file from a model folder, written as `motions.npz`.

    hmu generate --model models/base --prompts prompts.json --out motions.npz
    hmu generate --model models/momask-t2m --prompts prompts.jsonl --out motions.npz --device cuda \\
        --clip-weights ~/.cache/clip/ViT-B-32.pt
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  hmu generate --model models/base --prompts prompts.json --out motions.npz
  hmu generate --model models/base --prompts prompts.jsonl --out motions.npz --timesteps 18 --batch-size 64
  hmu generate --model models/momask-t2m --prompts prompts.json --out motions.npz --device cuda \\
      --clip-weights ~/.cache/clip/ViT-B-32.pt

prompt file: a JSON list or JSON Lines of {"id": "p1", "text": "a person kicks", "length": 120,
"repeats": 3, "seed": 0}; length (frames) null or absent: drawn by the model's length estimator.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate motions for a prompt file with a model folder",
        description="Generate `repeats` motions per prompt with a model folder and write them to a .npz\n"
        "file: key '<prompt id>/<repeat>' -> float32 (frames, 263) de-normalised features. The same\n"
        "seeds give the same motions whatever the batch size (on the same device).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="the model folder")
    parser.add_argument("--prompts", required=True, type=Path, metavar="FILE", help="JSON or JSONL prompts")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="the .npz file to write")
    parser.add_argument("--device", metavar="DEVICE", help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument(
        "--clip-weights", type=Path, metavar="FILE", help="CLIP ViT-B/32 weights (CLIP models)"
    )
    sampling = parser.add_argument_group("sampling (defaults: MoMask's HumanML3D evaluation settings)")
    sampling.add_argument("--timesteps", type=int, default=10, help="masked-transformer iterations (10)")
    sampling.add_argument("--cond-scale", type=float, default=4.0, help="guidance, masked transformer (4)")
    sampling.add_argument("--residual-cond-scale", type=float, default=5.0, help="guidance, residual (5)")
    sampling.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1)")
    sampling.add_argument("--topk-filter-thres", type=float, default=0.9, help="top-k threshold (0.9)")
    sampling.add_argument("--gumbel", action="store_true", help="Gumbel-argmax sampling in the masked model")
    sampling.add_argument(
        "--batch-size", type=int, default=32, help="motions per batch (32); never changes them"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from benchmark.backbone.generation import (
        GenerationSettings,
        generate_motions,
        read_prompts,
        text_encoder_for,
        write_motions,
    )
    from benchmark.backbone.model import load_model, resolve_device
    from benchmark.errors import HMUError

    if args.out.exists() and not args.overwrite:
        raise HMUError(f"{args.out}: exists (pass --overwrite to replace it)")
    settings = GenerationSettings(
        timesteps=args.timesteps,
        cond_scale=args.cond_scale,
        residual_cond_scale=args.residual_cond_scale,
        temperature=args.temperature,
        topk_filter_thres=args.topk_filter_thres,
        gumbel=args.gumbel,
        batch_size=args.batch_size,
    )
    prompts = read_prompts(args.prompts)  # before loading anything, so a bad file fails fast
    device = resolve_device(args.device)
    loaded = load_model(args.model, device=device)
    encoder = text_encoder_for(loaded.card, device=device, clip_weights=args.clip_weights)
    start = time.perf_counter()
    motions = generate_motions(loaded.backbone, encoder, prompts, settings)
    seconds = time.perf_counter() - start
    write_motions(args.out, motions, feature_dim=loaded.card.dataset.feature_dim)
    print(
        f"wrote {len(motions)} motions to {args.out} in {seconds:.1f} s "
        f"({len(motions) / seconds:.1f}/s on {device})"
    )
    return 0
