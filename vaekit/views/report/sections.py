"""The sections of a run's report page, each an HTML fragment; a section a run or model cannot give says why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from vaekit.views.report.runs import KL_COLUMN, Run, Series
from vaekit.views.webpage import (
    bar_chart,
    data_uri,
    esc,
    figure_html,
    format_value,
    gif_bytes,
    image_grid_uri,
    img_tag,
    line_chart,
    png_bytes,
    table_html,
)


def section(title: str, body: str, level: int = 2) -> str:
    return f"<h{level}>{esc(title)}</h{level}>\n{body}\n"


def note(text: str) -> str:
    return f"<p class=note>{esc(text)}</p>"


def guarded(title: str, make: Callable[[], str], level: int = 2) -> str:
    """A section drawn by ``make``; if drawing fails the page says so in its place (one bad section does not lose
    the report)."""
    try:
        return section(title, make(), level)
    except Exception as e:
        return section(title, note(f"could not be drawn: {type(e).__name__}: {e}"), level)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested JSON to dotted keys with scalar values (lists of scalars joined), ``not_applicable`` left out."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if k in ("not_applicable", "written"):
            continue
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = ", ".join(format_value(x) for x in v) if len(v) <= 8 else f"[{len(v)} values]"
        else:
            out[key] = v
    return out


def kl_columns(log: Series) -> tuple[str, dict[int, str]]:
    """The split ("train" preferred) and its per-index KL columns (kl_0, kl_1, ...) -> column name."""
    for split in ("train", "val"):
        cols = {int(m.group(2)): k for k in log if (m := KL_COLUMN.match(k)) and m.group(1) == split}
        if cols:
            return split, dict(sorted(cols.items()))
    return "", {}


def kl_unit(model: nn.Module | None, indices: list[int]) -> str:
    """Whether logged kl_i are per level (hierarchical models log kl_1..kl_L) or per latent dimension."""
    levels = getattr(model, "n_levels", None)
    return "level" if levels and indices == list(range(1, levels + 1)) else "latent dimension"


def examples_of(run: Run, n: int, data_dir: str | None) -> dict[str, Tensor]:
    from vaekit.run.io import held_out_batch

    return held_out_batch(run.cfg, n, 0, data_dir)


# -- one run's sections --------------------------------------------------------------------------------------------
def summary_html(run: Run) -> str:
    rows: list[dict[str, object]] = [{"": "run directory", "value": str(run.path)}]
    if run.cfg is not None:
        from vaekit.core.nets import count_parameters

        model = run.model
        rows += [{"": "model", "value": run.model_name}, {"": "data", "value": run.cfg.data.name},
                 {"": "parameters", "value": f"{count_parameters(model):,}"},
                 {"": "abilities", "value": ", ".join(sorted(getattr(model, "abilities", ()))) or "none"},
                 {"": "monitored term", "value": " ".join(getattr(model, "monitor", ()))}]
    steps = [xs[-1] for xs, _ in run.log.values() if xs]
    if steps:
        rows.append({"": "last logged step", "value": int(max(steps))})
    body = table_html(rows)
    if run.load_error:
        body += note(f"the model could not be loaded, so only the logs are shown: {run.load_error}")
    return body


def recipe_html(run: Run) -> str:
    if not run.config_text:
        return note("no config.yaml in the run directory")
    return f"<details open><summary class=muted>config.yaml</summary><pre>{esc(run.config_text)}</pre></details>"


def objective_terms(run: Run) -> list[str]:
    """Logged terms worth a curve of their own: the loss, the monitored term and the KL, where logged."""
    monitor = getattr(run.model, "monitor", ("elbo", "max"))[0]
    return [t for t in dict.fromkeys(("loss", monitor, "elbo", "kl")) if f"train/{t}" in run.log or f"val/{t}"
            in run.log]


def curves_html(run: Run) -> str:
    if not run.log:
        return note("no logs/metrics.csv in the run directory (the csv logger was off, or nothing was logged yet)")
    parts = []
    for term in objective_terms(run):
        series = {f"{split}/{term}": run.log[f"{split}/{term}"] for split in ("train", "val")
                  if f"{split}/{term}" in run.log}
        parts.append(f"<figure>{img_tag(line_chart(series, 'step', term), term)}<figcaption>{esc(term)}"
                     "</figcaption></figure>")
    parts.append(kl_per_latent_html(run))
    _, cols = kl_columns(run.log)
    shown = {f"{s}/{t}" for s in ("train", "val") for t in objective_terms(run)} | set(cols.values())
    others = [k for k in run.log if k.startswith("train/") and k not in shown and not KL_COLUMN.match(k)]
    for k in others[:8]:
        uri = line_chart({k: run.log[k]}, "step", k.removeprefix("train/"))
        parts.append(f"<figure>{img_tag(uri, k)}<figcaption>{esc(k)}</figcaption></figure>")
    if len(others) > 8:
        parts.append(note(f"{len(others) - 8} more logged terms not drawn: {', '.join(others[8:])}"))
    return "".join(parts)


def kl_per_latent_html(run: Run) -> str:
    """The logged KL of each latent dimension (or level) over steps, and its last value as bars; "" if none."""
    split, cols = kl_columns(run.log)
    if not cols:
        return ""
    unit = kl_unit(run.model, list(cols))
    names = latent_labels(run.model, list(cols), unit)
    series = {names[i]: run.log[c] for i, c in cols.items()}
    uri = line_chart(series, "step", "KL (nats)", f"{split} KL per {unit}")
    bars = bar_chart([names[i] for i in cols], [run.log[c][1][-1] for c in cols.values()], "KL (nats)",
                     f"last logged KL per {unit}")
    return (f"<figure>{img_tag(uri, 'kl')}<figcaption>KL per {esc(unit)} ({esc(split)})</figcaption></figure>"
            f"<figure>{img_tag(bars, 'kl bars')}<figcaption>at the last logged step</figcaption></figure>")


def latent_labels(model: nn.Module | None, indices: list[int], unit: str) -> dict[int, str]:
    names = model.latent_names() if unit != "level" and hasattr(model, "latent_names") else None
    if names and max(indices) < len(names):
        return {i: names[i] for i in indices}
    return {i: (f"level {i}" if unit == "level" else f"z{i}") for i in indices}


def metric_series(run: Run) -> Series:
    """Disentanglement (or any) metrics over steps: metrics/step*.json, else the logged metrics/ columns."""
    out: Series = {}
    for entry in sorted(run.metric_steps, key=lambda e: e.get("step", 0)):
        for k, v in flatten({k: v for k, v in entry.items() if k != "step"}).items():
            if isinstance(v, int | float) and not k.endswith("seconds"):
                xs, ys = out.setdefault(k, ([], []))
                xs.append(float(entry.get("step", 0)))
                ys.append(float(v))
    if not out:
        out = {k.removeprefix("metrics/").replace("/", "."): v for k, v in run.log.items() if k.startswith("metrics/")}
    return out


def metrics_over_steps_html(run: Run) -> str:
    series = metric_series(run)
    if not series:
        return note("no disentanglement metrics were scored during training (train.metrics in the recipe, on data "
                    "with known factors)")
    uri = line_chart(series, "step", "score", smooth=False)
    rows = [{"metric": k, **{f"step {int(x)}": y for x, y in zip(*v, strict=True)}} for k, v in series.items()]
    return f"<figure>{img_tag(uri, 'metrics over steps')}</figure><div class=scroll>{table_html(rows)}</div>"


def eval_table(columns: dict[str, dict[str, Any]]) -> str:
    """Rows: every number any evaluation holds (dotted keys); columns: the evaluations."""
    flat = {name: flatten(e) for name, e in columns.items()}
    keys = list(dict.fromkeys(k for f in flat.values() for k in f))
    rows = [{"": k, **{name: f.get(k, "") for name, f in flat.items()}} for k in keys]
    reasons = [(name, k, v) for name, e in columns.items() for k, v in (e.get("not_applicable") or {}).items()]
    body = f"<div class=scroll>{table_html(rows, ['', *flat])}</div>"
    if reasons:
        items = "".join(f"<li><b>{esc(k)}</b> ({esc(n)}): {esc(v)}</li>" for n, k, v in reasons)
        body += f"<p class=muted>not applicable:</p><ul class=muted>{items}</ul>"
    return body


def evaluation_html(run: Run) -> str:
    if not run.evals:
        return note(f"no eval_*.json in the run directory; `vaekit evaluate {run.path}` writes one")
    return eval_table(run.evals)


def figures_html(run: Run, batch: dict[str, Tensor]) -> str:
    from vaekit.models.base import Ability, has

    model = run.model
    if not has(model, Ability.FIGURES):
        return note(f"{type(model).__name__} declares no figures ability")
    torch.manual_seed(0)
    with torch.no_grad():
        figures = model.figures(batch)
    n = len(batch["x"])
    return (f"<p class=muted>the model's own figures (model.figures) of the first {n} test examples, prior draws "
            "seeded with 0</p>" + "".join(figure_html(name, f) for name, f in figures.items()))


def traversal_html(run: Run, batch: dict[str, Tensor], rows: int = 10, steps: int = 9) -> str:
    from vaekit.views.traverse import kl_by_latent, traversal

    model = run.model
    x = batch["x"]
    kl = kl_by_latent(model, x)
    order = torch.argsort(kl, descending=True)
    names = model.latent_names() if hasattr(model, "latent_names") else [f"z{j}" for j in range(len(kl))]
    labels = [names[j] for j in order.tolist()]
    bars = bar_chart(labels, kl[order].tolist(), "KL (nats)", f"mean KL per latent over {len(x)} test images")
    shown = order[:rows]
    parts = [f"<figure>{img_tag(bars, 'KL per latent')}</figure>"]
    for s in range(min(2, len(x))):
        grid = traversal(model, x[s], shown, steps=steps, radius=3.0)
        parts.append(f"<figure>{img_tag(image_grid_uri(grid.images, grid.nrow), f'traversal {s}')}<figcaption>test "
                     f"image {s}: rows {esc(', '.join(labels[:rows]))}; columns -3..3</figcaption></figure>")
    if len(kl) > rows:
        parts.append(f"<p class=muted>the {rows} latents with the most KL of {len(kl)}</p>")
    return "".join(parts)


def rollout_html(run: Run, batch: dict[str, Tensor]) -> str:
    from vaekit.views.rollout import image_rollout_gif, image_rollout_png, series_rollout_png

    model, x = run.model, batch["x"][:3]
    context = x.shape[1] // 2
    horizon = x.shape[1] - context
    cfg = getattr(model, "config", None)
    jumps = [1]
    if getattr(cfg, "jump_input", False) and 1 < getattr(cfg, "max_jump", 1) <= horizon:
        jumps.append(cfg.max_jump)
    parts = []
    for jump in jumps:
        torch.manual_seed(0)
        pred = model.rollout(x[:, :context], horizon, jump, 3).cpu()
        caption = f"context frames 0..{context - 1}, {horizon} frames rolled out in jumps of {jump}, 3 samples"
        if x.dim() == 5:
            png = png_bytes(image_rollout_png(x, pred, context, horizon, jump))
            gif = gif_bytes(image_rollout_gif(x[:2], pred[:, :2], context, horizon, jump))  # 2: a smaller file
            parts.append(f"<figure>{img_tag(data_uri(png, 'image/png'), 'rollout')}<figcaption>{esc(caption)}: true "
                         "frames above sampled ones (tinted)</figcaption></figure>")
            parts.append(f"<figure>{img_tag(data_uri(gif, 'image/gif'), 'rollout animation')}<figcaption>animated: "
                         "truth | samples</figcaption></figure>")
        else:
            png = png_bytes(series_rollout_png(x, batch.get("state"), pred, context, horizon, jump))
            parts.append(f"<figure>{img_tag(data_uri(png, 'image/png'), 'rollout')}<figcaption>{esc(caption)}"
                         "</figcaption></figure>")
    return "".join(parts)


def model_sections(run: Run, examples: int, data_dir: str | None, level: int = 2) -> str:
    """What the model draws: its figures, traversals, rollouts; each missing one named with the reason."""
    from vaekit.models.base import Ability, has

    if run.model is None:
        return section("Figures", note("the model could not be loaded: " + run.load_error), level)
    model = run.model
    sequence = callable(getattr(model, "rollout", None))
    try:
        batch = examples_of(run, 4 if sequence else examples, data_dir)
    except Exception as e:
        return section("Figures", note(f"the run's test data ({run.cfg.data.name}) could not be read, so the model "
                                       f"draws nothing here: {type(e).__name__}: {e}"), level)
    out = guarded("Figures", lambda: figures_html(run, batch), level)
    name = type(model).__name__
    if has(model, Ability.TRAVERSAL):
        many = examples_of(run, 256, data_dir) if not sequence else batch
        out += guarded("Traversals", lambda: traversal_html(run, many), level)
    else:
        out += section("Traversals", note(f"{name} declares no traversal ability (encode(x) giving a diagonal "
                                          "q(z|x) and decode(z) under N(0, I)); vaekit explore moves the latents "
                                          "it has"), level)
    if sequence:
        out += guarded("Rollouts", lambda: rollout_html(run, batch), level)
    else:
        out += section("Rollouts", note(f"{name} is no sequence model (it has no rollout())"), level)
    return out
