#!/usr/bin/env bash
# The GPU checks in one short call (under 8 minutes on one GPU): every task trains with mixed precision on the
# device, loads back on the CPU, and the image task resumes exactly. Without CUDA it runs its CPU fallback.
# On the device machine: bash bench/gpu_check.sh "$OUT/gpu_check.json"
set -euo pipefail
cd "$(dirname "$0")/.."
python bench/gpu_check.py --out "${1:-bench/results/gpu_check.json}"
