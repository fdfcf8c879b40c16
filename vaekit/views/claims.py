"""The README's Results table, made from the records under ``results/`` and nothing else.

    python -m vaekit.views.claims            # print the table
    python -m vaekit.views.claims --write    # into README.md (the table) and BENCHMARKS.md (each record in full)
    python -m vaekit.views.claims --check    # exit 1 if either differs from the records, or a record lacks a field

A record is a results file with ``record_version`` (a sweep writes one: ``vaekit.run.sweep.record``) and a
``readme`` block naming its row. Every record must hold the fields in ``REQUIRED``. The wording of a comparison
is the generator's, from the record's ``comparisons``: a margin inside the seed spread is written as a tie, a
claim with one seed a side as untested; no one words them by hand. Claims whose record is not yet remade (the
run folders are gone, or the run was made by code since found wrong) are listed below the table from
``results/pending.json``, each with why and the command that will remake it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vaekit.run.sweep import lookup

REQUIRED = ("command", "commit", "machine", "device", "torch", "seeds", "budget", "data_split", "metric_settings")
BEGIN, END = "<!-- results table: made by python -m vaekit.views.claims --write; do not edit -->", \
    "<!-- end of the results table -->"
DETAILS_BEGIN, DETAILS_END = "<!-- records: made by python -m vaekit.views.claims --write; do not edit -->", \
    "<!-- end of the records -->"
VERDICT = {"better": "{a} {side} {b} in every seed (the ranges do not overlap)",
           "worse": "{a} {other} {b} in every seed (the ranges do not overlap)",
           "tie": "a tie (the ranges over seeds overlap)", "untested": "one seed a side: the margin is untested",
           "missing": "not measured"}


def load_records(results: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "record_version" in data:
            out.append((path, data))
    return out


def missing_fields(record: dict[str, Any]) -> list[str]:
    """The required fields a record lacks or leaves empty (a budget without wall time counts as empty)."""
    gone = [k for k in REQUIRED if record.get(k) in (None, "", [], {})]
    budget = record.get("budget") or {}
    if "budget" not in gone and not budget.get("wall_s_total"):
        gone.append("budget.wall_s_total")
    if isinstance(record.get("commit"), str) and record["commit"].startswith("None"):
        gone.append("commit")
    return gone


def _num(v: Any, digits: int = 2, percent: bool = False) -> str:
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) for x in v):
        return "[" + ", ".join(_num(x, digits, percent) for x in v) + "]"  # an interval
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "—" if v is None else str(v)
    if isinstance(v, int) and not percent:
        return f"{v:,}"  # a count
    return f"{100 * v:.1f}%" if percent else f"{v:.{digits}f}"


def _spread(s: dict[str, Any], percent: bool = False, digits: int = 2) -> str:
    if not s.get("n"):
        return "—"
    n = lambda v: _num(v, digits, percent)  # noqa: E731
    return n(s["mean"]) if s["n"] == 1 else f"{n(s['mean'])} ({n(s['min'])}-{n(s['max'])})"


def _budget(record: dict[str, Any]) -> str:
    runs = list((record.get("budget") or {}).get("runs", {}).values())
    epochs = sorted({r.get("epochs") for r in runs if r.get("epochs") is not None})
    steps = sorted({r.get("steps") for r in runs if r.get("steps") is not None})
    seconds = (record.get("budget") or {}).get("wall_s_total", 0)
    spent = f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"  # not "0 min" for a short bench
    span = lambda v: str(v[0]) if len(v) == 1 else f"{v[0]}-{v[-1]}"  # noqa: E731
    unit = lambda v, name: f"{span(v)} {name}{'' if v == [1] else 's'}"  # noqa: E731
    # a run stopped by max_steps is a budget of steps (its last epoch is a part of one)
    by_steps = steps and any((r.get("max_steps") or -1) > 0 for r in runs)
    what = (unit(steps, "step") if by_steps else unit(epochs, "epoch") if epochs
            else unit(steps, "step") if steps else "budget unknown")
    seeds = record.get("seeds") or []
    device = ", ".join(record.get("device") or [])
    cpus = ", ".join(sorted({m.get("cpu", "?") for m in record.get("machine") or []}))
    return (f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}, {what} a run, {spent} of training "
            f"in all on {cpus} ({device})")


def result_cell(record: dict[str, Any]) -> str:
    """What the record shows, in words the record's numbers decide."""
    readme = record.get("readme") or {}
    percent = (record.get("metric") or {}).get("unit") == "accuracy"
    digits = (record.get("metric") or {}).get("digits") or 2  # a sweep's metric: {digits: 3} for small numbers
    spread = lambda v: _spread(v, percent, digits)  # noqa: E731
    rows = record.get("rows", [])
    parts = []
    lower = (record.get("metric") or {}).get("better", "lower") == "lower"
    sides = {"side": "below" if lower else "above", "other": "above" if lower else "below"}
    if record.get("comparisons"):
        for c in record["comparisons"]:
            ra = next(r for r in rows if r["group"] == c["group"] and r["run"] == c["a"])
            rb = next(r for r in rows if r["group"] == c["group"] and r["run"] == c["b"])
            group = "" if c["group"] == "all" else f"{c['group']}: "
            verdict = VERDICT[c["verdict"]].format(a=c["a"], b=c["b"], **sides)
            parts.append(f"{group}{c['a']} **{spread(ra['value'])}**, {c['b']} {spread(rb['value'])}: {verdict}")
    elif record.get("selection"):
        sel = record["selection"]
        scores = "; ".join(f"{r['run']} {spread(r['value'])}" for r in rows)
        chosen = sel.get("chosen")
        if chosen is None:
            parts.append("nothing chosen yet")
        else:
            parts.append(f"validation ({(record.get('metric') or {}).get('key')}): {scores}; chosen: "
                         f"**{chosen['run']}**")
            finals = [f["result"] for f in sel.get("final", []) if f.get("result")]
            if finals:
                shown = ", ".join(f"{label} **{_num(lookup(finals[0], key), percent=pct)}**"
                                  for label, key, pct in _report_keys(readme))
                parts.append(f"its test measure, taken once: {shown}")
    else:
        for r in rows:
            label = "" if len(rows) == 1 else f"{r['run']}: "
            over = "1 seed" if r["value"].get("n") == 1 else "mean (min-max) over seeds"
            parts.append(f"{label}**{spread(r['value'])}** ({(record.get('metric') or {}).get('key')}, {over})")
        results = [s.get("result") for r in rows for s in r.get("seeds", []) if s.get("result")]
        if results and readme.get("report"):
            parts.append(", ".join(f"{label} {_num(lookup(results[0], key), percent=pct)}"
                                   for label, key, pct in _report_keys(readme)))
    if record.get("missing_runs"):
        planned = record.get("seeds_planned") or []
        parts.append(f"incomplete: {len(record['missing_runs'])} runs of the recipe's seeds "
                     f"{', '.join(map(str, planned))} not yet made")
    verdicts = [c["verdict"] for c in record.get("comparisons", [])]
    if "missing" in verdicts:
        parts.append(f"incomplete: {verdicts.count('missing')} of {len(verdicts)} comparisons not yet measured")
    elif verdicts and any(v != "better" for v in verdicts) and record.get("claim"):
        parts.append(f"so the claim that {record['claim']} does not hold in every case at this budget "
                     f"({_budget(record)})")
    # targets are judged on the record's summary (a benchmark's median over rounds), the final measure of a
    # selection, or else the first seed's evaluation
    finals = [record["summary"]] if record.get("summary") else \
        [f["result"] for f in (record.get("selection") or {}).get("final", []) if f.get("result")] or \
        [s["result"] for r in rows for s in r.get("seeds", []) if s.get("result")][:1]
    if readme.get("targets") and finals:
        missed, spanned = [], []
        for label, (key, least) in readme["targets"].items():
            v = lookup(finals[0], key)
            each = [x for r in rows for s in r.get("seeds", []) if isinstance(x := lookup(s.get("result") or {}, key),
                                                                             (int, float))]
            if len(each) > 1 and min(each) < least <= max(each):  # the seeds (rounds) fall on both sides
                spanned.append(f"{label} ({min(each):.3g}-{max(each):.3g} over the seeds)")
            elif not (isinstance(v, (int, float)) and v >= least):
                missed.append(label)
        if not missed and not spanned:
            parts.append("every target met")
        if missed:
            parts.append(f"the target for {', '.join(missed)} is not met at this budget ({_budget(record)})")
        if spanned:
            parts.append(f"undecided for {', '.join(spanned)}: the range spans the target, a tie with it")
    return "; ".join(parts)


def _report_keys(readme: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """``report: {label: key}``; a key ending in ``%`` is shown as a percentage."""
    return [(label, key.rstrip("%"), key.endswith("%")) for label, key in (readme.get("report") or {}).items()]


def pending_list(results: Path) -> list[dict[str, Any]]:
    path = results / "pending.json"
    return json.loads(path.read_text()) if path.exists() else []


def render(results: Path) -> str:
    lines = ["| experiment | what the record shows | reference | record |", "|---|---|---|---|"]
    for path, rec in load_records(results):
        readme = rec.get("readme")
        if not readme:
            continue
        cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
        lines.append(f"| {cell(readme['experiment'])} ({_budget(rec)}) | {cell(result_cell(rec))} | "
                     f"{cell(readme.get('reference', ''))} | [`{path.name}`](results/{path.name}): "
                     f"`{cell(rec['command'][0])}` |")
    pend = pending_list(results)
    if pend:
        lines += ["", "Not in the table until remade (their earlier numbers stay in BENCHMARKS.md as history):", ""]
        lines += [f"- **{p['claim']}**: {p['why']} Remade by `{p['command']}`." for p in pend]
    return "\n".join(lines)


def _settings(record: dict[str, Any]) -> str:
    ms = record.get("metric_settings") or {}
    plain = {k: v for k, v in ms.items() if k != "metric_settings" and v not in (None, [], {})}
    out = ", ".join(f"{k} {v}" for k, v in plain.items())
    for name, kw in (ms.get("metric_settings") or {}).items():
        out += f"; {name}: " + ", ".join(f"{k} {v}" for k, v in kw.items())
    return out


def render_details(results: Path) -> str:
    """BENCHMARKS.md's record section: per record, its command, code, machine, budget, settings, and each row with
    every seed's value."""
    out = []
    for path, rec in load_records(results):
        key = (rec.get("metric") or {}).get("key")
        also = sorted({k for r in rec.get("rows", []) for k in (r.get("also") or {})})
        commits = rec["commit"] if isinstance(rec["commit"], list) else [rec["commit"]]
        out += [f"### `{path.name}`: {rec.get('claim') or rec.get('experiment')}", "",
                f"- command: `{'`, `'.join(rec['command'])}`", f"- code: {', '.join(c[:12] for c in commits)}",
                f"- {_budget(rec)}",
                f"- data: {json.dumps((rec.get('data_split') or {}).get('data'), sort_keys=True)}; test examples "
                f"{(rec.get('data_split') or {}).get('test_examples')}; "
                f"{(rec.get('data_split') or {}).get('selection')}",
                f"- evaluation settings: {_settings(rec)}", ""]
        head = ["group", "run", f"{key}: mean (min-max)", "each seed", *also, "paper"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rec.get("rows", []):
            seeds = " / ".join(_num(s.get("value"), 3) for s in r.get("seeds", [])) or "—"
            digits = (rec.get("metric") or {}).get("digits") or 2
            cells = [r["group"], r["run"], _spread(r["value"], digits=digits), seeds,
                     *[_spread((r.get("also") or {}).get(k, {}), digits=digits) for k in also], _num(r.get("paper"))]
            out.append("| " + " | ".join(cells) + " |")
        for c in rec.get("comparisons", []):
            out.append(f"\n{c['group']}: {c['a']} against {c['b']}: **{c['verdict']}**")
        if rec.get("selection", {}).get("chosen"):
            out.append(f"\nChosen on {rec['selection']['on']}: **{rec['selection']['chosen']['run']}**; its final "
                       f"measure (`{' '.join(rec['selection']['final_command'])}`) is in the record.")
        out.append("")
    return "\n".join(out).rstrip()


def _between(text: str, begin: str, end: str) -> str | None:
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip()


def _replace(path: Path, begin: str, end: str, body: str) -> None:
    text = path.read_text()
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{body}\n{end}{tail}")


def check(results: Path, readme: Path, benchmarks: Path | None = None) -> list[str]:
    """Every problem, one line each: a record without a field, a README table that is not the generated one."""
    problems = [f"{path}: lacks {', '.join(gone)}" for path, rec in load_records(results)
                if (gone := missing_fields(rec))]
    for path, begin, end, made in ((readme, BEGIN, END, render),
                                   *([(benchmarks, DETAILS_BEGIN, DETAILS_END, render_details)] if benchmarks else [])):
        found = _between(path.read_text(), begin, end)
        if found is None:
            problems.append(f"{path}: no results markers ({begin!r} ... {end!r})")
        elif found != made(results).strip():
            problems.append(f"{path}: the records' section differs from `python -m vaekit.views.claims` "
                            "(run it with --write)")
    return problems


def write(results: Path, readme: Path, benchmarks: Path | None = None) -> None:
    _replace(readme, BEGIN, END, render(results))
    if benchmarks is not None:
        _replace(benchmarks, DETAILS_BEGIN, DETAILS_END, render_details(results))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaekit.views.claims", description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--benchmarks", type=Path, default=Path("BENCHMARKS.md"))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="exit 1 if the README's table or a record is wrong")
    g.add_argument("--write", action="store_true", help="write the table into the README")
    args = p.parse_args(argv)
    if args.check:
        problems = check(args.results, args.readme, args.benchmarks)
        for line in problems:
            print(f"vaekit: {line}", file=sys.stderr)
        return 1 if problems else 0
    if args.write:
        write(args.results, args.readme, args.benchmarks)
        return 0
    print(render(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
