"""Benchmark: the CUDA path of the backbone at the published size, on a GPU machine.

Run by benchmarks/gpu_check.sh after `hmu train all --config published --device cuda` has trained a
published-size model briefly on a generated dataset (with a CLIP text tower of random weights: the real
weights cannot be downloaded there). Measures and checks:

- the RVQ's quantizer picks the same codes under bfloat16 autocast as in float32 (its distances stay
  float32); how many codes a whole encoding under autocast, and a GPU encoding, share with float32 CPU codes;
- generation throughput (samples/s) of the published model on the GPU at several batch sizes, and on the
  machine's CPU for comparison, with MoMask's evaluation settings (10 steps, guidance 4 and 5);
- that a batch size changes speed only, never the motions (same seeds, same motions).

    python benchmarks/gpu_check.py clip-weights /tmp/clip-random.pt
    python benchmarks/gpu_check.py measure --model /tmp/model --out gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.backbone.generation import GenerationSettings, Prompt, generate_motions, text_encoder_for
from benchmark.backbone.model import load_model
from benchmark.text.clip import ClipTextTower

TEXTS = (
    "a person kicks with the right leg",
    "a person jumps forward",
    "a person walks forward slowly",
    "someone punches twice with the left hand",
    "a man waves with both hands",
    "a person turns around and sits down",
    "a person runs in a circle",
    "someone throws a ball",
)


def write_random_clip_weights(path: Path, seed: int = 0) -> None:
    """A CLIP text tower with OpenAI's initialisation from `seed`, saved as a plain state dict."""
    torch.manual_seed(seed)
    torch.save(ClipTextTower().state_dict(), path)


def prompts(count: int, seed: int = 0) -> list[Prompt]:
    """`count` prompts cycling over TEXTS, lengths drawn uniformly in HumanML3D's 40-196 frames."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(40, 197, size=count) // 4 * 4
    return [
        Prompt(id=f"p{i:04d}", text=TEXTS[i % len(TEXTS)], length=int(lengths[i]), repeats=1, seed=i)
        for i in range(count)
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(model_dir: Path, weights: Path, device: str, count: int, batch_size: int) -> dict[str, float]:
    loaded = load_model(model_dir, device=device)
    encoder = text_encoder_for(loaded.card, device, clip_weights=weights)
    settings = GenerationSettings(batch_size=batch_size)
    batch = prompts(count)
    generate_motions(loaded.backbone, encoder, batch[: min(count, batch_size)], settings)  # warm-up
    _sync(loaded.backbone.mean.device)
    start = time.perf_counter()
    motions = generate_motions(loaded.backbone, encoder, batch, settings)
    _sync(loaded.backbone.mean.device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return {
        "device": device,
        "samples": len(motions),
        "batch_size": batch_size,
        "seconds": round(seconds, 3),
        "samples_per_s": round(len(motions) / seconds, 2),
        "peak_gpu_gib": round(peak, 2),
    }


def rvq_checks(model_dir: Path) -> dict[str, float]:
    """Codes of 64 motions of 196 frames: the quantizer alone under bfloat16 autocast vs float32 (the guard),
    the whole encoding under autocast vs float32 (the encoder's convolutions do run in bfloat16), and GPU vs
    CPU in float32 (TF32 convolutions)."""
    cpu = load_model(model_dir, device="cpu").backbone
    gpu = load_model(model_dir, device="cuda").backbone
    motion = torch.randn(64, 196, cpu.config.rvq.input_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        codes_cpu = cpu.rvq.encode(motion)
        codes_gpu = gpu.rvq.encode(motion.cuda())
        latent = gpu.rvq.encoder(motion.cuda().permute(0, 2, 1))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            quantizer_bf16 = gpu.rvq.quantizer.quantize(latent)
            codes_bf16 = gpu.rvq.encode(motion.cuda())
    return {
        "quantizer_under_bf16_autocast_equal_fp32": bool(torch.equal(quantizer_bf16, codes_gpu)),
        "encode_bf16_autocast_vs_fp32_agreement": round(float((codes_bf16 == codes_gpu).float().mean()), 4),
        "codes_gpu_vs_cpu_agreement": round(float((codes_gpu.cpu() == codes_cpu).float().mean()), 4),
        "codes_gpu_vs_cpu_agreement_layer0": round(
            float((codes_gpu.cpu()[..., 0] == codes_cpu[..., 0]).float().mean()), 4
        ),
    }


def batch_invariance(model_dir: Path, weights: Path) -> dict[str, float]:
    loaded = load_model(model_dir, device="cuda")
    encoder = text_encoder_for(loaded.card, "cuda", clip_weights=weights)
    batch = prompts(16)
    one = generate_motions(loaded.backbone, encoder, batch, GenerationSettings(batch_size=1))
    many = generate_motions(loaded.backbone, encoder, batch, GenerationSettings(batch_size=16))
    diffs = [float(np.abs(one[key] - many[key]).max()) for key in one]
    return {"max_abs_diff_batch1_vs_batch16": max(diffs)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    weights = verbs.add_parser("clip-weights")
    weights.add_argument("path", type=Path)
    measure = verbs.add_parser("measure")
    measure.add_argument("--model", type=Path, required=True)
    measure.add_argument("--clip-weights", type=Path, required=True)
    measure.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.verb == "clip-weights":
        write_random_clip_weights(args.path)
        return
    report: dict[str, object] = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "tf32_conv": torch.backends.cudnn.allow_tf32,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
    }
    report["rvq"] = rvq_checks(args.model)
    print(json.dumps(report["rvq"]), flush=True)
    report["batch_invariance"] = batch_invariance(args.model, args.clip_weights)
    print(json.dumps(report["batch_invariance"]), flush=True)
    runs = [throughput(args.model, args.clip_weights, "cuda", 512, size) for size in (32, 128, 512)]
    runs.append(throughput(args.model, args.clip_weights, "cpu", 32, 32))
    for run in runs:
        print(json.dumps(run), flush=True)
    report["generation"] = runs
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
