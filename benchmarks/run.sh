#!/usr/bin/env bash
# make bench: vaekit vs a plain loop vs pythae 0.1.2, 3 interleaved rounds in one run, then the report;
# then the 64x64 conv net against a plain loop.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PYTHAE=benchmarks/.venv-pythae
if [[ ! -x $PYTHAE/bin/python ]]; then
  python3 -m venv $PYTHAE
  $PYTHAE/bin/pip install --quiet "torch==2.13.0" "pythae==0.1.2"
fi
rm -f runs/bench/results.json
for round in 0 1 2; do
  PYTHONPATH=benchmarks $PY benchmarks/bench_vaekit.py $round
  PYTHONPATH=benchmarks $PYTHAE/bin/python benchmarks/bench_pythae.py $round 2>&1 | grep -v Warning | tail -1
done
PYTHONPATH=benchmarks $PY benchmarks/report.py
# The 64x64 conv net of the disentanglement experiments: plain loop vs channels-last vs vaekit (issue 9).
PYTHONPATH=benchmarks $PY benchmarks/bench_conv64.py 2>&1 | grep -v -e "^\`" -e "Tip:" -e "GPU available" -e "TPU available"
$PY benchmarks/record_cpu.py   # runs/bench/results.json -> results/bench_cpu.json, with commit and machine
