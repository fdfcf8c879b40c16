"""HTML pieces shared by ``vaekit report`` and ``vaekit explore``: escaping, data URIs, charts and a model's typed
figures (vaekit.core.figures) as inline HTML. Everything a page shows is inlined (base64 data URIs, inline CSS), so
a page opens offline and fetches nothing."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from PIL import Image
from torch import Tensor

from vaekit.core.drawing import wav_bytes
from vaekit.core.figures import AudioClip, Bars, Curve, Figure, ImageGrid, Table


def esc(value: object) -> str:
    """Text (any value) made safe for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def gif_bytes(frames: Sequence[Image.Image], ms: int = 250) -> bytes:
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=list(frames[1:]), duration=ms, loop=0)
    return buf.getvalue()


def img_tag(uri: str, alt: str, cls: str = "") -> str:
    return f'<img src="{uri}" alt="{esc(alt)}"' + (f' class="{esc(cls)}"' if cls else "") + ">"


def grid_scale(images: Tensor, nrow: int, target: int = 560) -> int:
    """An integer upscale that brings a grid of small images (28x28) towards ``target`` pixels wide, at most 4x."""
    width = nrow * (images.shape[-1] + 2)
    return max(1, min(4, target // max(width, 1)))


# -- charts ------------------------------------------------------------------------------------------------------
@contextmanager
def chart(width: float = 5.6, height: float = 3.0) -> Iterator[tuple[Any, list[str]]]:
    """A matplotlib Axes (Agg, no display); on exit the figure is drawn and its PNG data URI appended to the list
    yielded beside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=90)
    out: list[str] = []
    try:
        yield ax, out
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out.append(data_uri(buf.getvalue(), "image/png"))
    finally:
        plt.close(fig)


def line_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
               title: str = "", smooth: bool = True, logy: bool = False) -> str:
    """PNG data URI of named (x, y) series; long noisy series drawn faint with a running mean over them."""
    with chart() as (ax, out):
        for i, (name, (xs, ys)) in enumerate(series.items()):
            color = f"C{i % 10}"
            window = max(1, len(ys) // 60) if smooth else 1
            if window > 1:
                ax.plot(xs, ys, color=color, alpha=0.25, linewidth=0.7)
                ax.plot(xs[window - 1:], running_mean(ys, window), color=color, linewidth=1.4, label=name)
            else:
                ax.plot(xs, ys, color=color, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
        limits = settled_range([ys for _, ys in series.values()])
        if limits is not None:
            ax.set_ylim(*limits)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("symlog")
        if title:
            ax.set_title(title, fontsize=9)
    return out[0]


def settled_range(all_ys: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    """A y range for curves whose first steps dwarf the rest (a loss of 2,500 at step 0, 80 later): that of the
    values after the first 5% of each series, when the whole range is over three times as wide; else None."""
    finite = lambda v: [y for y in v if math.isfinite(y)]
    every = finite([y for ys in all_ys for y in ys])
    later = finite([y for ys in all_ys for y in ys[len(ys) // 20:]])
    if len(later) < 20 or not every:
        return None
    lo, hi = min(later), max(later)
    if (max(every) - min(every)) <= 3 * (hi - lo) or hi == lo:
        return None
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def running_mean(ys: Sequence[float], window: int) -> list[float]:
    """Means of each ``window`` consecutive values (NaN-free input)."""
    out, total = [], 0.0
    for i, y in enumerate(ys):
        total += y
        if i >= window:
            total -= ys[i - window]
        if i >= window - 1:
            out.append(total / window)
    return out


def bar_chart(labels: Sequence[str], values: Sequence[float], ylabel: str, title: str = "") -> str:
    with chart(min(9.0, max(4.0, 0.3 * len(values) + 1.5)), 2.8) as (ax, out):
        ax.bar(range(len(values)), values, color="#1f77b4")
        ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 12 else 0, fontsize=7)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, fontsize=9)
    return out[0]


# -- typed figures ------------------------------------------------------------------------------------------------
def image_grid_uri(images: Tensor, nrow: int) -> str:
    from vaekit.core.drawing import grid

    return data_uri(png_bytes(grid(images, nrow, scale=grid_scale(images, nrow))), "image/png")


def table_html(rows: Sequence[dict[str, object]], columns: Sequence[str] | None = None, fmt: Callable[[object], str]
               | None = None) -> str:
    """An HTML table of ``rows`` (dicts), one column per key (first seen first), every cell escaped."""
    fmt = fmt or format_value
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def format_value(v: object) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.4f}".rstrip("0").rstrip(".")
    return "" if v is None else str(v)


def figure_html(name: str, figure: Figure) -> str:
    """One typed figure as a captioned HTML block: an image, a chart, an audio player or a table."""
    caption = f"<figcaption>{esc(name)}</figcaption>"
    if isinstance(figure, ImageGrid):
        return f"<figure>{img_tag(image_grid_uri(figure.images, figure.nrow), name)}{caption}</figure>"
    if isinstance(figure, Curve):
        series = {k: (figure.x, v) for k, v in figure.series.items()}
        uri = line_chart(series, figure.xlabel, figure.ylabel, smooth=False)
        return f"<figure>{img_tag(uri, name)}{caption}</figure>"
    if isinstance(figure, Bars):
        uri = bar_chart(figure.labels, figure.values, figure.ylabel, figure.title)
        return f"<figure>{img_tag(uri, name)}{caption}</figure>"
    if isinstance(figure, AudioClip):
        uri = data_uri(wav_bytes(figure.samples, figure.sample_rate), "audio/wav")
        return f'<figure><audio controls src="{uri}"></audio>{caption}</figure>'
    if isinstance(figure, Table):
        return f"<figure>{table_html(figure.rows)}{caption}</figure>"
    return f"<p class=note>{esc(name)}: no HTML writer for figures of type {esc(type(figure).__name__)}</p>"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:0 18px 40px;
color:#1d232a;background:#fbfbfc}
h1{font-size:1.5em;margin:.8em 0 .2em}h2{font-size:1.2em;border-bottom:1px solid #d8dde3;padding-bottom:3px;
margin-top:1.6em}h3{font-size:1em;margin:1em 0 .3em}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}td,th{border:1px solid #d8dde3;padding:2px 8px;
text-align:right}th{background:#eef1f4}td:first-child,th:first-child{text-align:left}
.scroll{overflow-x:auto}pre{background:#f1f3f5;padding:8px;font-size:.8em;overflow:auto;max-height:420px}
figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}figure img{max-width:100%;
image-rendering:pixelated;border:1px solid #e3e6ea}figcaption{font-size:.8em;color:#555}
.note{color:#6b5200;background:#fff7de;border-left:3px solid #e0b000;padding:4px 8px;font-size:.9em}
.runs{display:grid;gap:18px}.card{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:4px 12px;
min-width:0}.muted{color:#666;font-size:.85em}code{background:#f1f3f5;padding:0 3px}
"""


def page(title: str, body: str, css: str = CSS) -> str:
    """A whole HTML document; ``body`` is HTML already escaped by its makers."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{css}</style></head><body>\n{body}\n</body></html>\n")
