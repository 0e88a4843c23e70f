#!/usr/bin/env bash
# The backbone's CUDA path at the published size, on a GPU machine with PyTorch but no network:
# generate a small dataset, train every part of the published-size model briefly on CUDA with mixed precision
# (hmu train's real loop, checkpoints and model folder), then benchmarks/gpu_check.py measure.
# Usage: bash benchmarks/gpu_check.sh OUT_DIR [STEPS]   (wheels of openai-clip, ftfy, wcwidth in .whl/ if missing)
set -euo pipefail
out=${1:?output folder}
steps=${2:-300}
work=$(mktemp -d)
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" .whl/*.whl
    export PYTHONPATH="$work/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
hmu() { python3 -m benchmark.cli.main "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.csv"
start=$(date +%s)
hmu data synth --out "$work/data" --motions 400 --workers 8
python3 benchmarks/gpu_check.py clip-weights "$work/clip-random.pt"
t0=$(date +%s)
hmu train all --data "$work/data" --config published --device cuda --encoder clip-vit-b32 \
    --encoder-weights "$work/clip-random.pt" --steps "$steps" --out "$work/model" --no-progress 2>&1 | tee "$out/train.log"
echo "train all (published, $steps steps per part): $(( $(date +%s) - t0 )) s" | tee -a "$out/train.log"
cp "$work/model.work"/*.json "$out/" 2>/dev/null || true
python3 benchmarks/gpu_check.py measure --model "$work/model" --clip-weights "$work/clip-random.pt" \
    --out "$out/gpu_check.json"
# The masked transformer continued for 100 steps on the machine's CPU (float32), for the GPU/CPU step ratio.
hmu train mask --data "$work/data" --init "$work/model" --out "$work/model-cpu" --steps 100 --device cpu \
    --encoder-weights "$work/clip-random.pt" --no-progress 2>&1 | grep "^mask:" | sed "s/^/cpu /" \
    | tee -a "$out/train.log"
echo "total: $(( $(date +%s) - start )) s"
