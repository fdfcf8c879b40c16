"""``vaekit report RUN [RUN ...]``: one self-contained HTML page (every image, chart and sound inlined; nothing
fetched when it is opened) showing what a run is and what it learnt: the recipe, the loss and KL curves (per
latent dimension and per level where they were logged), the evaluation table (eval_*.json), disentanglement
metrics over steps (metrics/step*.json), and what the model itself draws through the contract: its typed figures
on a few test examples, traversals (Ability.TRAVERSAL), rollouts (sequence models). A section a model cannot
provide is named, with the reason. Several runs: their curves overlaid, their numbers side by side, the recipe
keys that differ, and each run's pictures in its own column.

    vaekit report runs/vae_mnist                        # -> runs/vae_mnist/report.html
    vaekit report runs/dsprites/beta1_s0 runs/dsprites/beta4_s0 -o beta_sweep.html
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from vaekit.core import options as opt
from vaekit.views.report.runs import Run, read_run
from vaekit.views.report.sections import (
    curves_html,
    eval_table,
    evaluation_html,
    flatten,
    guarded,
    kl_columns,
    kl_per_latent_html,
    metric_series,
    metrics_over_steps_html,
    model_sections,
    note,
    objective_terms,
    recipe_html,
    section,
    summary_html,
)
from vaekit.views.webpage import (
    esc,
    img_tag,
    line_chart,
    page,
    table_html,
)


def run_report(run: Run, examples: int = 16, data_dir: str | None = None) -> str:
    body = f"<h1>{esc(run.label)}</h1><p class=muted>vaekit run report</p>"
    body += section("Run", summary_html(run))
    body += section("Recipe", recipe_html(run))
    body += guarded("Training curves", lambda: curves_html(run))
    body += guarded("Metrics over training steps", lambda: metrics_over_steps_html(run))
    body += guarded("Evaluation", lambda: evaluation_html(run))
    body += model_sections(run, examples, data_dir)
    return page(f"vaekit report: {run.label}", body)


# -- several runs ---------------------------------------------------------------------------------------------------
def unique_labels(runs: list[Run]) -> list[str]:
    """Each run's recipe name; where names repeat (one recipe, several settings), the folder's name, else the path."""
    names, folders = [r.name for r in runs], [r.path.name for r in runs]
    return [r.name if names.count(r.name) == 1 else r.path.name if folders.count(r.path.name) == 1 else str(r.path)
            for r in runs]


def config_differences(runs: list[Run], labels: list[str]) -> str:
    flat = [flatten(yaml.safe_load(r.config_text) or {}) if r.config_text else {} for r in runs]
    keys = [k for k in dict.fromkeys(k for f in flat for k in f) if len({str(f.get(k)) for f in flat}) > 1]
    if not keys:
        return "<p class=muted>the recipes are the same</p>"
    rows = [{"key": k, **{lab: f.get(k, "(absent)") for lab, f in zip(labels, flat, strict=True)}} for k in keys]
    return f"<div class=scroll>{table_html(rows, ['key', *labels])}</div>"


def overlaid_curves(runs: list[Run], labels: list[str]) -> str:
    terms = list(dict.fromkeys(t for r in runs for t in objective_terms(r)))
    parts = []
    for term in terms:
        for split in ("val", "train"):
            series = {lab: r.log[f"{split}/{term}"] for r, lab in zip(runs, labels, strict=True)
                      if f"{split}/{term}" in r.log}
            if series:
                uri = line_chart(series, "step", f"{split}/{term}")
                parts.append(f"<figure>{img_tag(uri, f'{split}/{term}')}<figcaption>{esc(split)}/{esc(term)}"
                             "</figcaption></figure>")
    metrics = {f"{lab}: {k}": v for r, lab in zip(runs, labels, strict=True) for k, v in metric_series(r).items()}
    if metrics:
        parts.append(f"<figure>{img_tag(line_chart(metrics, 'step', 'score', smooth=False), 'metrics')}"
                     "<figcaption>metrics over steps</figcaption></figure>")
    return "".join(parts) or note("none of the runs has logs/metrics.csv")


def comparison_report(runs: list[Run], examples: int = 16, data_dir: str | None = None) -> str:
    labels = unique_labels(runs)
    body = f"<h1>{esc(' vs '.join(labels))}</h1><p class=muted>vaekit comparison of {len(runs)} runs</p>"
    overview = [{"run": lab, "model": r.model_name, "data": r.cfg.data.name if r.cfg else "?",
                 "directory": str(r.path), "last step": int(max((xs[-1] for xs, _ in r.log.values() if xs),
                                                                 default=0))}
                for r, lab in zip(runs, labels, strict=True)]
    body += section("Runs", table_html(overview))
    body += guarded("Recipe differences", lambda: config_differences(runs, labels))
    body += guarded("Training curves, overlaid", lambda: overlaid_curves(runs, labels))
    evals = {f"{lab} · {name}": e for r, lab in zip(runs, labels, strict=True) for name, e in r.evals.items()}
    body += section("Evaluation", eval_table(evals) if evals else note("no run has an eval_*.json"))
    cards = []
    for r, lab in zip(runs, labels, strict=True):
        card = f"<h2>{esc(lab)}</h2>"
        if kl_columns(r.log)[1]:
            card += guarded("KL per latent", lambda r=r: kl_per_latent_html(r), 3)
        card += model_sections(r, examples, data_dir, level=3)
        card += section("Recipe", recipe_html(r).replace("<details open>", "<details>"), 3)
        cards.append(f"<div class=card>{card}</div>")
    cols = min(len(runs), 3)
    body += f'<div class=runs style="grid-template-columns:repeat({cols},minmax(0,1fr))">{"".join(cards)}</div>'
    return page(f"vaekit comparison: {', '.join(labels)}", body)


def write_report(paths: list[str | Path], out: str | Path | None = None, examples: int = 16,
                 data_dir: str | None = None) -> Path:
    """The report of one run (default RUN/report.html) or the comparison of several (default ./report.html)."""
    if not paths:
        raise ValueError("name at least one run directory")
    runs = [read_run(p) for p in paths]
    text = run_report(runs[0], examples, data_dir) if len(runs) == 1 else comparison_report(runs, examples, data_dir)
    target = Path(out) if out else (runs[0].path / "report.html" if len(runs) == 1 else Path("report.html"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


# -- command line --------------------------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> None:
    path = write_report(args.runs, args.out, args.examples, args.data_dir)
    print(f"vaekit: wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    """``vaekit report RUN [RUN ...]``: add the subcommand to the CLI's subparsers (one line in vaekit/cli.py)."""
    r = sub.add_parser("report", help="a self-contained HTML page of a run (curves, numbers, figures), or a "
                                      "side-by-side comparison of several")
    r.add_argument("runs", nargs="+", type=opt.existing_path, help="run directories (several: compared side by side)")
    r.add_argument("-o", "--out", type=opt.out_path,
                   help="HTML file (default RUN/report.html, or ./report.html for several runs)")
    r.add_argument("--examples", type=opt.count(1024), default=16,
                   help="test examples the model's figures are drawn from")
    r.add_argument("--data-dir", type=opt.existing_path,
                   help="where the runs' data are, if not where they were trained from")
    r.set_defaults(func=cmd_report)
    return r
