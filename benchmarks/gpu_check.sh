#!/bin/bash
# The GPU check, in one go on a lent GPU machine (see benchmarks/gpu_kit.py, which packs .gpu/ first).
# Writes bench-*.json and check.log under $OUT (or ./gpu-out). ~6 minutes on an H100.
set -euo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/check.log") 2>&1
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c 'import torch, transformers, accelerate; print(torch.__version__, transformers.__version__, accelerate.__version__)'
python3 benchmarks/gpu_kit.py --weights
# the packaged model's shape: batch auto (searches from 64, halves on out-of-memory) and batch 1
python3 benchmarks/bench_scoring.py --model "$PWD/.gpu/shapes/smollm2-135m" --data-dir .gpu/data \
    --repetitions 4 --batch auto 1 --json "$OUT/bench-smollm2.json"
# a 7B-class model at the paper's longest SST-2 context
python3 benchmarks/bench_scoring.py --model "$PWD/.gpu/shapes/llama2-7b-shape" --data-dir .gpu/data \
    --examples 140 --repetitions 2 --batch auto --json "$OUT/bench-7b.json"
