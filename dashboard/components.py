"""Shared charts and widgets. Pure presentation: data comes in as DataFrames / arrays."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.linear.study import METHODS

METHOD_COLORS = {
    "GD": "#d97706",
    "OM": "#2563eb",
    "OM (retain only)": "#7c3aed",
    "GD+GA": "#dc2626",
}


def narrow_columns(*names: str) -> dict:
    """``st.dataframe`` column settings that keep short columns narrow ("small": 75 px), so a
    wide table leaves room for its long ones instead of cutting them off."""
    import streamlit as st

    return {n: st.column_config.Column(n, width="small") for n in names}


def log_ticks(lo: float, hi: float, max_ticks: int = 10) -> dict:
    """Tick settings for a log axis over ``[lo, hi]`` (data units, ``0 < lo < hi``) whose
    labels read as the values: 0.2, 0.5, 1, 2 (plotly's own log ticks label 0.2 and 20 alike
    "2", in small print). Ticks at 1, 2 and 5 × 10ⁿ; at 1 to 9 × 10ⁿ when that would give
    fewer than three; at powers of ten only (every k-th) when it would give more than
    ``max_ticks``. Values below 10⁻³ or from 10⁵ up read ``1e-6``."""
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))

    def at(mults: tuple[int, ...], every: int = 1) -> list[tuple[int, int]]:
        return [(m, e) for e in range(e0, e1 + 1) for m in mults
                if e % every == 0 and lo <= float(f"{m}e{e}") <= hi]  # fmt: skip

    ticks = at((1, 2, 5))
    if len(ticks) < 3:
        ticks = at(tuple(range(1, 10)))
    if len(ticks) > max_ticks:
        ticks = at((1,), max(1, math.ceil((e1 - e0 + 1) / max_ticks)))
    vals = [float(f"{m}e{e}") for m, e in ticks]
    text = [
        f"{v:g}" if 1e-3 <= v < 1e5 else f"{m}e{e}" for v, (m, e) in zip(vals, ticks, strict=True)
    ]
    return {"tickmode": "array", "tickvals": vals, "ticktext": text}


# each line its own dash and marker, so lines that coincide (GD and OM (retain only) both stay
# near 1) remain visible; markers sit at different steps per method for the same reason
LINE_STYLES = {
    "GD": ("solid", "circle"),
    "OM": ("dash", "square"),
    "OM (retain only)": ("dot", "diamond"),
    "GD+GA": ("dashdot", "x"),
}


# the characters that open Markdown constructs (emphasis, code, links and images, autolinks and
# HTML, entities, formulas, strike-through, tables, headings), and the escape itself
_MARKUP = re.compile(r"[\\`*_\[\]<>&$~|#]")
# where GFM finds a bare link in the text (after escapes are read): "scheme://", "www.", "@"
_BARE_LINK = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)
WORD_JOINER = "\u2060"  # invisible, and no line break at it


def plain(text: object) -> str:
    """``text`` (a name, a file name, a message holding them) for a place that renders Markdown
    (``st.markdown``, captions, alerts, subheaders, toasts, widget and link labels), so that it
    shows as typed: each character that could open a Markdown construct is backslash-escaped
    (CommonMark turns a backslash before ASCII punctuation into that character alone), and an
    invisible U+2060 WORD JOINER goes inside each ``://``, ``www.`` and before each ``@``, where
    GFM would find a bare link (it looks for them in the text after the escapes are read, so no
    escape stops it). So ``![x](URL of an image)`` is neither an image nor a link,
    ``[x](javascript:…)`` no link, `` ` `` no code span, ``$`` no formula, ``:red[x]`` no
    colour. Common punctuation of messages (``. , : ; - / ( ) ' "``) is left as it is."""
    return _BARE_LINK.sub(WORD_JOINER, _MARKUP.sub(r"\\\g<0>", str(text)))


def code(text: object) -> str:
    """``text`` as one Markdown code span, whatever backticks it holds: the fence is one backtick
    longer than its longest run of backticks, with a space inside each end (CommonMark strips
    one), so the span ends only where it should; nothing inside a code span is interpreted."""
    text = str(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def page_link(where, page: str, label: str, icon: str) -> None:
    """``where.page_link`` to one of the app's pages; a page file run on its own (``streamlit
    run dashboard/views/x.py``, or a test of one page) has no navigation to link into, so it
    names the page in a caption instead."""
    from streamlit.errors import StreamlitAPIException

    try:
        where.page_link(page, label=label, icon=icon)
    except StreamlitAPIException:
        where.caption(f"{label} (in the app's sidebar)")


def query_int(value: str | None) -> int | None:
    """A link's ``?param=V`` as a whole number, or None: ASCII digits only and at most 18 of
    them (``str.isdigit`` also accepts ``'²'``, which ``int`` refuses, and ``int`` refuses
    numbers of more than 4300 digits), so a hand-edited URL never stops a page."""
    if value and len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    return None


def fmt_value(x, digits: int = 3) -> str:
    """Numbers for tables: scientific when tiny or huge, '—' when missing."""
    if x is None or pd.isna(x):
        return "—"
    x = float(x)
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e5):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def id_or_dash(ids: pd.Series) -> pd.Series:
    """Ids as text for tables, '—' where there is none (rather than 'None')."""
    return ids.map(lambda v: "—" if v is None or pd.isna(v) else str(int(v)))


def fmt_step(step, total: int | None = None) -> str:
    """A step number, or 'never' when the event did not happen."""
    if step is None or pd.isna(step):
        return "never"
    return f"{int(step)}" + (f" of {total}" if total else "")


def _marker_sizes(steps: pd.Series, last: int, k: int, of: int) -> list[int]:
    """Size 9 at about ten steps of the run (shifted by method ``k`` of ``of``), 0 elsewhere."""
    every = max(1, last // 10)
    shift = int(every * (k + 0.5) / of)
    return [9 if (int(t) - shift) % every == 0 else 0 for t in steps]


def _rel_dist_ticks(curves: pd.DataFrame) -> dict:
    """``log_ticks`` over the plotted relative distances (and the 1e-6 mark), if any."""
    y = curves["rel_dist"].clip(lower=1e-16) if "rel_dist" in curves else pd.Series(dtype=float)
    y = y[np.isfinite(y)]
    if y.empty:
        return {}
    lo, hi = min(float(y.min()), 1e-6), float(y.max())
    return log_ticks(lo, hi) if hi > lo else {}


def linear_chart(curves: pd.DataFrame, outcomes: pd.DataFrame) -> go.Figure:
    """rel_dist against step, one line per method, log-scale y; diverged methods marked ✕."""
    import math

    fig = go.Figure()
    status = outcomes.set_index("method")["status"].to_dict() if not outcomes.empty else {}
    t_max = int(curves["step"].max()) if not curves.empty else 0
    at = outcomes.set_index("method")["diverged_at"].to_dict() if not outcomes.empty else {}
    for k, method in enumerate(METHODS):
        c = curves[curves["method"] == method]
        if c.empty:
            continue
        dash, symbol = LINE_STYLES.get(method, ("solid", "circle"))
        fig.add_trace(
            go.Scatter(
                x=c["step"], y=c["rel_dist"].clip(lower=1e-16), mode="lines+markers",
                name=f"{method} — {status.get(method, '')}",
                line={"color": METHOD_COLORS.get(method), "width": 2, "dash": dash},
                marker={"symbol": symbol, "size": _marker_sizes(c["step"], t_max, k, len(METHODS)),
                        "color": METHOD_COLORS.get(method)},
                hovertemplate="step %{x}<br>rel. distance %{y:.3g}<extra>" + method + "</extra>",
            )
        )  # fmt: skip
        if status.get(method) == "diverged":
            last = c.iloc[-1]
            fig.add_trace(go.Scatter(x=[last["step"]], y=[last["rel_dist"]], mode="markers+text",
                                     marker={"symbol": "x", "size": 12,
                                             "color": METHOD_COLORS.get(method)},
                                     text=[f"diverged at step {fmt_step(at.get(method))}"],
                                     textposition="middle right",
                                     showlegend=False, hoverinfo="skip"))  # fmt: skip
    # the 1e-6 mark of the table; on a log axis, annotations take log10 of y
    fig.add_hline(y=1e-6, line_dash="dot", line_color="#94a3b8")
    fig.add_annotation(x=1, xref="paper", y=math.log10(1e-6), text="1e-6 (table: first step below)",
                       showarrow=False, xanchor="right", yanchor="bottom",
                       font={"color": "#64748b", "size": 11})  # fmt: skip
    fig.update_layout(
        xaxis_title="step",
        yaxis_title="‖θₜ − θ_ret‖ / ‖θ_full − θ_ret‖",
        yaxis={"type": "log", **_rel_dist_ticks(curves)},
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        height=460,
    )
    return fig


def linear_outcome_table(outcomes: pd.DataFrame, steps: int) -> pd.DataFrame:
    """The outcome of each method, as text a reader can take in: tiny numbers in scientific
    notation, 'never' for thresholds not reached, a diverged method's step and best distance."""
    rows = []
    for o in outcomes.itertuples():
        diverged = o.status == "diverged"
        rows.append({
            "method": o.method,
            "outcome": f"diverged at step {fmt_step(o.diverged_at)}" if diverged else o.status,
            "final rel. distance": "— (diverged)" if diverged else fmt_value(o.final_rel_dist),
            "best rel. distance": fmt_value(o.min_rel_dist),
            "first step < 1e-3": fmt_step(o.step_below_1e3, steps),
            "first step < 1e-6": fmt_step(o.step_below_1e6, steps),
            "step size 1/L": fmt_value(o.step_size),
        })  # fmt: skip
    return pd.DataFrame(rows)


def class_histogram(labels, class_names: list[str], title: str = "") -> go.Figure:
    """Bar chart of how many chosen points fall in each class."""
    import numpy as np

    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(class_names))
    fig = go.Figure(go.Bar(x=class_names, y=counts, marker_color="#2b6cb0"))
    fig.update_layout(
        title=title, xaxis_title="class", yaxis_title="points", height=260,
        margin={"l": 10, "r": 10, "t": 30 if title else 10, "b": 10}, xaxis_type="category",
    )  # fmt: skip
    return fig


def upscale(img, size: int = 64):
    """Nearest-neighbour upscaling so tiny images (8×8 digits) stay crisp: ``(H, W[, 3])`` uint8."""
    import numpy as np

    img = np.asarray(img)
    k = max(1, size // img.shape[0])
    return np.repeat(np.repeat(img, k, axis=0), k, axis=1)


def image_html(img, caption: str, size: int = 64) -> str:
    """An ``<img>`` with the picture inline (a base64 PNG data URI) and its caption.

    Inline pictures need no request to Streamlit's media endpoint, whose files of a previous
    run are dropped on every rerun: a quick rerun made the browser fetch dropped files (404s).
    """
    import base64
    import html
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(upscale(img, size)).save(buf, format="PNG")
    src = base64.b64encode(buf.getvalue()).decode()
    return (
        f'<figure style="display:inline-block;margin:0 6px 6px 0;text-align:center">'
        f'<img src="data:image/png;base64,{src}" width="{size}" height="{size}" '
        f'alt="{html.escape(caption)}" style="image-rendering:pixelated"/>'
        f'<figcaption style="font-size:0.75rem">{html.escape(caption)}</figcaption></figure>'
    )


def gallery(st, data, indices, max_images: int = 60) -> None:
    """The train images of ``indices`` with their labels (the first ``max_images``), inline."""
    idx = list(indices)[:max_images]
    cells = [
        image_html(data.image("train", int(i)),
                   f"#{i} · {data.class_names[int(data.y_train[int(i)])]}")
        for i in idx
    ]  # fmt: skip
    st.markdown("<div>" + "".join(cells) + "</div>", unsafe_allow_html=True)
    if len(indices) > max_images:
        st.caption(f"… and {len(indices) - max_images} more")


DOCS = Path(__file__).resolve().parent.parent / "docs" / "concepts.md"


def concepts(*headings: str) -> str:
    """The sections of docs/concepts.md under these ``## `` headings, read from the file (so the
    in-app help and the document never disagree); a note if the file or a section is missing."""
    try:
        text = DOCS.read_text(encoding="utf-8")
    except OSError:
        return "*docs/concepts.md is missing from this copy of the lab.*"
    sections: dict[str, str] = {}
    for block in text.split("\n## ")[1:]:
        title, _, body = block.partition("\n")
        sections[title.strip().lower()] = f"#### {title.strip()}\n{body.strip()}"
    return "\n\n".join(
        sections.get(h.lower(), f"*(no section “{h}” in docs/concepts.md)*") for h in headings
    )
