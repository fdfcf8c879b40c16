#!/usr/bin/env bash
# Issue 25's device benchmark in one call (at most 8 minutes on one H100 or H200): vaekit vs a hand-written loop
# (eager and compiled) on four models, the NLL estimator, the conv net's TFLOP/s against the dense bf16 peak, and
# 1 / 4 / 8 packed runs; writes results/device_bench.json (device, torch, CUDA, commit) and prints it.
#   bash benchmarks/device.sh                 # on the device machine, from the repository root
#   SMOKE=1 bash benchmarks/device.sh         # a few steps of each, on any machine (the test runs this)
# The device machine has no package index: run it from a checkout whose .venv (torch 2.13.0 with CUDA) is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export VAEKIT_DATA=${VAEKIT_DATA:-../shared/data}
if [[ -n ${SMOKE:-} ]]; then
  exec timeout 900 "$PY" benchmarks/bench_device.py --smoke --models "${MODELS:-vae,ladder_vae}" \
    --out "${OUT:-runs/device_bench/smoke.json}" --runs runs/device_bench
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 480 "$PY" benchmarks/bench_device.py --out results/device_bench.json --runs runs/device_bench
