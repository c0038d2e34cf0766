"""Eval reports as one self-contained HTML file with charts (``--html FILE`` of eval style|book|memory).

The charts are plotly figures; plotly.js is embedded once, inline, so the file opens offline and nothing is
fetched at view time (no CDN, no fonts, no images from elsewhere).  Style: feature bars (author vs base vs
adapter), each feature distance with the gain, per-passage distances, perplexity, a few example
continuations.  Book: per-chapter lines of length score, repetition, AI味 and findings, then the chapter
table.  Memory: per-chapter recall lines and the chapter table.  Every text from the report is HTML-escaped.
This module renders a report it is given; it does not compute metrics.  A plotly.js of ~4.7 MB makes each
file about that size, whatever the report.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

COLOURS = {"author": "#555555", "base": "#8da0cb", "adapter": "#fc8d62"}

_CSS = """
body{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.5}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:1em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}.meta{color:#666;font-size:.9em}
.good{color:#1a7f37}.bad{color:#c62828}.ex{white-space:pre-wrap;font-size:.9em;background:#fafafa;
padding:.5em;border:1px solid #eee}.warn{color:#b26a00}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return _e(x)


class _Charts:
    """Figures to HTML; the first one carries plotly.js inline, the rest reuse it."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig: Any, height: int = 380) -> str:
        fig.update_layout(height=height, margin={"l": 50, "r": 20, "t": 40, "b": 40}, template="plotly_white")
        out = fig.to_html(
            full_html=False,
            include_plotlyjs=self.first,  # True: the whole library inline (no CDN)
            config={"displaylogo": False, "responsive": True},
        )
        self.first = False
        return out


def _table(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, meta: str, body: str, warnings: list[str]) -> str:
    warn = "".join(f'<p class="warn">! {_e(w)}</p>' for w in warnings)
    return (
        '<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="meta">{meta}</p>{warn}{body}</body></html>'
    )


def _created(report: dict[str, Any]) -> str:
    created = report.get("created")
    if isinstance(created, int | float):
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(created))
    return _e(created)


# ----------------------------------------------------------------------------- style
def style_html(report: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    chart = _Charts()
    systems = ["base"] + (["adapter"] if report.get("adapter") else [])
    author = report["author"]["features"]
    scalar = ["sentence_mean", "dialogue_share", "punctuation_per_100", "mattr", "paragraph_mean"]
    # features relative to the author's (author = 1): one scale for all
    fig = go.Figure()
    for who in ["author", *systems]:
        feats = author if who == "author" else report[who]["features"]
        ys = [(feats[k] / author[k]) if author[k] else 0.0 for k in scalar]
        text = [_num(feats[k]) for k in scalar]
        fig.add_bar(name=who, x=scalar, y=ys, text=text, marker_color=COLOURS[who])
    fig.update_layout(title="特征（相对作者 = 1） features relative to the author", barmode="group")
    parts = [f"<h2>特征 features</h2>{chart(fig)}"]
    # punctuation and function words, per 100 / per 1,000 字
    for key, title in (("punctuation", "标点 per 100 字"), ("function_words", "虚词 per 1,000 字")):
        fig = go.Figure()
        for who in ["author", *systems]:
            feats = author if who == "author" else report[who]["features"]
            fig.add_bar(name=who, x=list(feats[key]), y=list(feats[key].values()), marker_color=COLOURS[who])
        fig.update_layout(title=title, barmode="group")
        parts.append(chart(fig, 320))
    # each feature's distance from the author
    comps = list(report["base"]["components"])
    fig = go.Figure()
    for who in systems:
        fig.add_bar(
            name=who, x=comps, y=[report[who]["components"][k] for k in comps], marker_color=COLOURS[who]
        )
    fig.update_layout(
        title="与作者的距离（越小越像） distance from the author (lower is closer)", barmode="group"
    )
    parts.append(f"<h2>距离 distances</h2>{chart(fig)}")
    gain = report.get("gain")
    head = ["", "author", *systems, *(["gain (base − adapter)"] if gain else [])]
    rows = []
    for k in scalar:
        rows.append(
            [
                _e(k),
                _num(author[k]),
                *(_num(report[s]["features"][k]) for s in systems),
                *([""] if gain else []),
            ]
        )
    for k in comps:
        g = gain["components"][k] if gain else None
        cls = "" if g is None or abs(g) < 1e-9 else ("good" if g > 0 else "bad")
        rows.append(
            [f"distance {_e(k)}", "0", *(_num(report[s]["components"][k]) for s in systems)]
            + ([f'<span class="{cls}">{_num(g)}</span>'] if gain else [])
        )
    totals = (
        ("style_distance", "<b>文风距离 style distance</b>", 4),
        ("perplexity", "每字困惑度 perplexity / 字", 2),
    )
    for key, label, digits in totals:
        g = gain[key] if gain else None
        cls = "" if g is None or abs(g) < 1e-9 else ("good" if g > 0 else "bad")
        rows.append(
            [label, "", *(_num(report[s][key], digits) for s in systems)]
            + ([f'<span class="{cls}">{_num(g, digits)}</span>'] if gain else [])
        )
    parts.append(_table(head, rows))
    # per passage
    passages = report.get("passages") or []
    if passages:
        fig = go.Figure()
        xs = [p["index"] for p in passages]
        for who in systems:
            fig.add_scatter(
                name=who,
                x=xs,
                y=[p[f"{who}_distance"] for p in passages],
                mode="lines+markers",
                line_color=COLOURS[who],
            )
        fig.update_layout(title="每段的文风距离 style distance per passage", xaxis_title="passage")
        parts.append(f"<h2>段落 passages</h2>{chart(fig, 320)}")
        if all(report[s]["perplexity"] is not None for s in systems):
            fig = go.Figure()
            fig.add_bar(
                x=systems,
                y=[report[s]["perplexity"] for s in systems],
                marker_color=[COLOURS[s] for s in systems],
            )
            fig.update_layout(
                title="作者原文的每字困惑度 perplexity per 字 of the author's text (lower is better)"
            )
            parts.append(chart(fig, 300))
    judge = report.get("judge")
    if judge:
        parts.append(_judge_html(judge, chart))
    for ex in report.get("examples") or []:
        parts.append(
            f"<h2>例 example: {_e(ex['source'])}</h2><p class=meta>…{_e(ex['prefix_tail'])}</p>"
            + "".join(
                f"<h3>{_e(who)}</h3><div class=ex>{_e(ex.get(who))}</div>" for who in ["author", *systems]
            )
        )
    src = report.get("source") or {}
    meta = (
        f"模型 model {_e(report.get('model'))} · 适配器 adapter {_e(report.get('adapter_name') or '-')} · "
        f"{_e(report['samples'])} 段 × {_e(report['chars'])} 字 · seed {_e(report.get('seed'))} · "
        f"source {_e(src.get('data') or src.get('novel'))} · {_created(report)}"
    )
    return _page("文风评估 style eval", meta, "".join(parts), report.get("warnings") or [])


def _judge_html(judge: dict[str, Any], chart: _Charts) -> str:
    import plotly.graph_objects as go

    dims = judge["dimensions"]
    fig = go.Figure()
    for who, scores in judge["dimension_means"].items():
        fig.add_bar(name=who, x=dims, y=[scores.get(d) for d in dims], marker_color=COLOURS.get(who))
    fig.update_layout(title=f"评委 judge: {judge['model']} (1–10)", barmode="group", yaxis_range=[0, 10])
    rows = [
        [_e(p["passage"]), _e(p["order"]), _e(p["winner"]), _e(p.get("reason"))] for p in judge["pairwise"]
    ]
    return (
        f"<h2>评委 judge</h2><p>评委模型 judge model: <b>{_e(judge['model'])}</b> · "
        f"两种顺序一致 agreement between orders: <b>{_num(judge['agreement'], 2)}</b> · "
        f"wins {_e(judge['wins'])}</p>{chart(fig, 340)}"
        + _table(["passage", "order (A, B)", "winner", "reason"], rows, left=4)
    )


# ----------------------------------------------------------------------------- book
BOOK_SERIES = (
    ("length_score", "长度分 length score"),
    ("repetition_rate", "重复率 repetition"),
    ("ai_flavour", "AI味 / 1,000 字"),
    ("findings_per_10k", "问题 findings / 10,000 字"),
)


def book_figure(report: dict[str, Any], series: tuple[tuple[str, str], ...] = BOOK_SERIES) -> Any:
    """The book report's per-chapter lines (one subplot per metric of ``series``): a plotly figure
    (the HTML report embeds it; the 创作 page's 体检 panel shows it in a ``gr.Plot``)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = report["chapters"]
    xs = [c["number"] for c in rows]
    fig = make_subplots(rows=len(series), cols=1, shared_xaxes=True, subplot_titles=[t for _, t in series])
    for i, (key, title) in enumerate(series, start=1):
        fig.add_trace(
            go.Scatter(x=xs, y=[c.get(key) for c in rows], mode="lines+markers", name=title), row=i, col=1
        )
    fig.update_layout(showlegend=False)
    fig.update_xaxes(title_text="章 chapter", row=len(series), col=1)
    fig.update_xaxes(**_chapter_ticks(xs))
    return fig


def _chapter_ticks(xs: list[int]) -> dict[str, Any]:
    """Whole chapter numbers on the x axis (no 1.5), at most ~20 ticks."""
    return {"tick0": min(xs, default=1), "dtick": max(1, -(-len(xs) // 20))}


def chars_figure(report: dict[str, Any]) -> Any:
    """字 vs 目标 per chapter of a book report: bars of the chapters' 字, a line of their targets."""
    import plotly.graph_objects as go

    rows = report["chapters"]
    xs = [c["number"] for c in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=xs, y=[c["chars"] for c in rows], name="字 chars", marker_color=COLOURS["base"]))
    fig.add_trace(
        go.Scatter(
            x=xs, y=[c.get("target_chars") for c in rows], mode="lines+markers", name="目标 target",
            line={"color": COLOURS["adapter"]},
        )
    )  # fmt: skip
    fig.update_layout(title="字 vs 目标 chars vs target", legend={"orientation": "h"})
    fig.update_xaxes(title_text="章 chapter", **_chapter_ticks(xs))
    return fig


def book_html(report: dict[str, Any]) -> str:
    chart = _Charts()
    rows = report["chapters"]
    fig = book_figure(report)
    body = [f"<h2>每章 per chapter</h2>{chart(fig, 220 * len(BOOK_SERIES))}"]
    b = report["book"]
    body.append(
        _table(
            ["全书 whole book", ""],
            [
                ["字", _num(b["chars"])],
                ["长度分 length score", _num(b["length_score"], 1)],
                ["重复率 repetition", _num(b["repetition_rate"], 4)],
                ["AI味 / 1,000 字", _num(b["ai_flavour"])],
                ["问题 findings / 10,000 字", _num(b["findings_per_10k"])],
                ["文风漂移 style drift", _num(b["style_drift"])],
                ["逾期伏笔 overdue threads", _num(b["threads_overdue"])],
            ],
        )
    )
    body.append(
        _table(
            ["章", "标题", "字/目标", "长度分", "重复率", "AI味/千字", "问题", "文风漂移", "常见AI味"],
            [
                [
                    _e(c["number"]),
                    _e(c.get("title")),
                    f"{_e(c['chars'])}/{_e(c.get('target_chars'))}",
                    _num(c["length_score"], 1),
                    _num(c["repetition_rate"], 4),
                    _num(c["ai_flavour"]),
                    _num(c["findings"]),
                    _num(c.get("style_drift")),
                    _e("、".join(c.get("ai_flavour_top") or [])),
                ]
                for c in rows
            ],
            left=2,
        )
    )
    meta = f"《{_e(report.get('title'))}》 {_e(report.get('novel'))} · {len(rows)} 章 · {_created(report)}"
    return _page("体检 book health", meta, "".join(body), report.get("warnings") or [])


# ----------------------------------------------------------------------------- memory
def memory_html(report: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    chart = _Charts()
    rows = report["chapters"]
    xs = [c["number"] for c in rows]
    fig = go.Figure()
    for key, title in (
        ("cast_card_recall", "人物卡召回 card recall"),
        ("past_event_recall", "往事召回 past-event recall"),
        ("latest_state_correctness", "最新状态 latest state"),
    ):
        fig.add_scatter(x=xs, y=[c.get(key) for c in rows], mode="lines+markers", name=title)
    fig.add_bar(
        x=xs, y=[len(c["future_leaks"]) for c in rows], name="未来泄漏 future leaks", yaxis="y2", opacity=0.4
    )
    fig.update_layout(
        title="每章记忆 memory per chapter",
        yaxis={"range": [0, 1.05]},
        yaxis2={"overlaying": "y", "side": "right", "title": "leaks"},
        xaxis_title="章 chapter",
    )
    summary = _table(
        ["全书 pooled", ""],
        [
            ["cast_card_recall 人物卡召回", _num(report["cast_card_recall"])],
            ["past_event_recall 往事召回", _num(report["past_event_recall"])],
            ["future_leaks 未来泄漏", _num(report["future_leaks"])],
            ["latest_state_correctness 最新状态", _num(report.get("latest_state_correctness"))],
        ],
    )
    table = _table(
        ["章", "出场", "人物卡", "往事召回", "未来泄漏", "最新状态", "提示词 tokens"],
        [
            [
                _e(c["number"]),
                _e("、".join(c["cast"])),
                f"{_e(c['cast_cards_shown'])}/{_e(c['cast_cards'])}",
                f"{_e(c['past_events_shown'])}/{_e(c['past_events'])}",
                _e(len(c["future_leaks"])),
                _num(c.get("latest_state_correctness")),
                f"{_e(c['prompt_tokens'])}/{_e(c['budget'])}",
            ]
            for c in rows
        ],
        left=2,
    )
    meta = f"{_e(report.get('novel'))} · budget {_e(report.get('budget'))} tokens · {_created(report)}"
    body = f"<h2>召回 recall</h2>{chart(fig)}{summary}<h2>每章 per chapter</h2>{table}"
    return _page("记忆体检 memory", meta, body, report.get("warnings") or [])


RENDERERS = {"style": style_html, "book": book_html, "memory": memory_html}


def render(report: dict[str, Any]) -> str:
    """The HTML page of a style, book or memory report."""
    from xiaoshuo.eval.report import EvalReportError

    kind = report.get("kind")
    if kind not in RENDERERS:
        raise EvalReportError(
            "这种报告没有 HTML 版 (no HTML for this kind of report)",
            expected=", ".join(RENDERERS),
            received=kind,
        )
    return RENDERERS[kind](report)


def write_html(path: str | Path, report: dict[str, Any]) -> Path:
    """Render ``report`` and write it to ``path`` atomically."""
    from xiaoshuo.files import atomic_write

    return atomic_write(path, render(report))
