"""``make bench``'s output kept as a record: runs/bench/results.json (every round of vaekit, the plain loops and
pythae) with the commit, machine and torch version, into results/bench_cpu.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaekit.run import provenance  # noqa: E402


def main() -> int:
    src = ROOT / "runs" / "bench" / "results.json"
    if not src.exists():
        print(f"{src}: no benchmark output (run make bench)", file=sys.stderr)
        return 1
    out = ROOT / "results" / "bench_cpu.json"
    out.write_text(json.dumps({"command": "make bench", **provenance.code(), "machine": provenance.machine(),
                               "device": {"type": "cpu", "name": provenance.machine()["cpu"]},
                               "results": json.loads(src.read_text())}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
