"""benchmarks/device.sh's script runs end to end in its smoke mode (a few steps of each part) on any machine and
writes a record naming the device, the versions and the commit; the numbers themselves are only meaningful on
a device, at full length (BENCHMARKS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_device_benchmark_runs_in_smoke_mode(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "VAEKIT_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "benchmarks/bench_device.py", "--smoke", "--models", "vae", "--out", str(out),
                    "--runs", str(tmp_path / "runs")], cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=900)
    rec = json.loads(out.read_text())
    assert rec["smoke"] is True and rec["machine"]["torch"].startswith("2.13.0") and rec["device"]["type"]
    assert rec["commit"] and rec["complete"] is True and rec["pythae"]["status"]  # compared, or why not
    row = rec["models"]["vae"]
    assert row["batch_size"] == 128 and min(row["plain_eager"], row["plain_compiled"], row["vaekit"]) > 0
    assert rec["nll"]["images"] == 200 and [p["runs"] for p in rec["packed"]] == [1, 2]
    assert all(p.get("aggregate_steps_per_s", 0) > 0 for p in rec["packed"])
