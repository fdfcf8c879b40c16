"""``make bench``'s output kept as a record: runs/bench/results.json (every round of vaekit, the plain loops and
pythae, and the 64x64 conv net) with the commit, machine and torch version, into results/bench_cpu.json.

The record has the fields of a sweep's (``vaekit.views.claims`` puts it in the README's Results table): one row
per speed ratio of issue 25, each round's value (a round is one seed: the same seed for every loop in it), and
the targets judged on the mean over the rounds (the number the table shows)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaekit.run import provenance  # noqa: E402
from vaekit.run.sweep import RECORD_VERSION  # noqa: E402

# (row, ratio of two timings in one round: (numerator, denominator), higher is better for vaekit)
VAEKIT = ("train", "vaekit", "epoch_s")
RATIOS = {
    "vaekit vs the tuned plain loop (epoch time)": (("train", "plain_tuned", "epoch_s"), VAEKIT),
    "vaekit vs pythae 0.1.2's TrainingPipeline (epoch time)": (("pythae", "epoch_s"), VAEKIT),
    "NLL estimator vs pythae's get_nll (k = 5000, 1,000 images)": (("pythae", "nll_s_b100"), ("nll", "vaekit_s")),
}
TARGETS = {"0.95x the tuned loop": ("vaekit_vs_tuned_loop", 0.95), "1.5x pythae": ("vaekit_vs_pythae", 1.5),
           "NLL 3x pythae": ("nll_vs_pythae", 3.0)}


def _at(results: dict, i: int, path: tuple[str, ...]) -> float:
    node = results[f"{path[0]}_round{i}"]
    for p in path[1:]:
        node = node[p]
    return float(node)


def build(results: dict) -> dict:
    rounds = sorted(int(k.removeprefix("train_round")) for k in results if k.startswith("train_round"))
    rounds = [i for i in rounds if f"pythae_round{i}" in results and f"nll_round{i}" in results]
    keys = [t[0] for t in TARGETS.values()]
    rows, summary = [], {}
    for (name, (num, den)), key in zip(RATIOS.items(), keys, strict=True):
        values = [_at(results, i, num) / _at(results, i, den) for i in rounds]
        rows.append({"group": "all", "run": name, "paper": None,
                     "value": {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
                               "n": len(values), "values": values},
                     "seeds": [{"seed": i, "value": v, "result": {key: v}}
                               for i, v in zip(rounds, values, strict=True)],
                     "also": {}})
        summary[key] = statistics.fmean(values)  # the number the table shows
    machine = provenance.machine()
    code = provenance.code()
    timed = sum(_at(results, i, p) for i in rounds for p in (("train", "plain", "epoch_s"),
                                                               ("train", "plain_tuned", "epoch_s"),
                                                               ("train", "vaekit", "epoch_s"), ("pythae", "epoch_s")))
    images = int(results[f"train_round{rounds[0]}"]["plain"]["images"]) if rounds else 0
    return {
        "record_version": RECORD_VERSION,
        "experiment": "bench_cpu",
        "claim": "vaekit trains at >= 0.95x the tuned plain loop and >= 1.5x pythae; its NLL estimator runs >= 3x "
                 "pythae's get_nll (issue 25, on the CPU)",
        "readme": {"experiment": "training speed on the CPU: MLP VAE 784-400-20, batch 128, one epoch of "
                                 f"{images:,} images, and the NLL estimator",
                   "reference": "targets: 0.95x a tuned hand-written loop, 1.5x pythae 0.1.2, NLL 3x pythae's get_nll",
                   "targets": {label: [key, least] for label, (key, least) in TARGETS.items()}},
        "command": ["make bench"],
        "recipe": "benchmarks/run.sh",
        "commit": f"{code.get('commit')}{'+dirty' if code.get('dirty') else ''}",
        "machine": [machine],
        "device": ["cpu"],
        "torch": [machine.get("torch", "?")],
        "seeds": rounds,
        "budget": {"runs": {f"round{i}": {"epochs": 1, "steps": None, "wall_s": None} for i in rounds},
                   "wall_s_total": round(timed, 1)},
        "data_split": {"data": {"name": "mnist", "binarize": "dynamic", "batch_size": 128},
                       "test_examples": [1000], "selection": "none: every loop's time for one epoch"},
        "metric": {"key": "speed ratio (higher: vaekit faster)", "better": "higher", "unit": "x"},
        "metric_settings": {"nll_samples": 5000, "nll_images": 1000, "rounds": len(rounds), "interleaved": True,
                            "pythae_get_nll_batch_size": 100},
        "summary": {**summary, "how": "mean over the rounds"},
        "rows": rows,
        "comparisons": [],
        "results": results,  # every timing of every round, as benchmarks/*.py wrote them
    }


def main() -> int:
    src = ROOT / "runs" / "bench" / "results.json"
    if not src.exists():
        print(f"{src}: no benchmark output (run make bench)", file=sys.stderr)
        return 1
    out = ROOT / "results" / "bench_cpu.json"
    out.write_text(json.dumps(build(json.loads(src.read_text())), indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
