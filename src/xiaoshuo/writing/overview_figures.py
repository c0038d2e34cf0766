"""Drawing the book at a glance: plotly figures for the 总览 page and one self-contained HTML file.

Takes the data :mod:`xiaoshuo.writing.overview` gathers and returns ``plotly.graph_objects.Figure``
objects (the page shows them in ``gr.Plot``) or, in :func:`report_html`, one HTML document with
plotly.js embedded (no CDN, no request at view time) and a small script: clicking a character shows its
card, the history of its states and the chapters it appears in.  Node positions come from a seeded
spring layout of the whole book's graph, so moving the chapter slider moves no one.  This module draws;
it reads no files and decides nothing about what is known at a chapter.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

#: node colours by what the newest state says (overview.GONE_WORDS)
STATE_COLOURS = {
    "alive": "#4c78a8",
    "": "#4c78a8",
    "dead": "#9d9d9d",
    "missing": "#e45756",
    "unknown": "#cccccc",
}
STATE_LABELS = {"alive": "", "": "", "dead": "（已故）", "missing": "（失踪）", "unknown": "（无卡片）"}
STATUS_LABELS = {"planned": "未写", "drafted": "草稿", "final": "定稿", "stale": "待同步"}
FONT = "Noto Sans CJK SC, WenQuanYi Micro Hei, Microsoft YaHei, PingFang SC, sans-serif"


def layout_positions(graph: dict[str, Any], seed: int = 7) -> dict[str, tuple[float, float]]:
    """Stable positions for every node of ``graph`` (the whole book's graph: later chapters reuse them)."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(n["id"] for n in graph["nodes"])
    g.add_edges_from((e["source"], e["target"]) for e in graph["edges"])
    if not g.nodes:
        return {}
    k = 1.5 / math.sqrt(max(1, g.number_of_nodes()))
    pos = nx.spring_layout(g, seed=seed, k=k, iterations=60 if g.number_of_nodes() < 300 else 30)
    return {n: (float(x), float(y)) for n, (x, y) in pos.items()}


def _graph_traces(graph: dict[str, Any], pos: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """Plain trace dicts (plotly validates objects slowly; a slider with 40 stops has 120 traces)."""
    ex, ey, mx, my, labels = [], [], [], [], []
    for e in graph["edges"]:
        if e["source"] not in pos or e["target"] not in pos:
            continue
        (x0, y0), (x1, y1) = pos[e["source"]], pos[e["target"]]
        ex += [x0, x1, None]
        ey += [y0, y1, None]
        mx.append((x0 + x1) / 2)
        my.append((y0 + y1) / 2)
        since = f"（第{e['since']}章起）" if e["since"] is not None else ""
        labels.append(f"{e['source']} → {e['target']}：{e['label']}{since}")
    nodes = [n for n in graph["nodes"] if n["id"] in pos]
    sizes = [12 + 5 * math.sqrt(n["appearances"]) for n in nodes]
    return [
        dict(
            type="scatter",
            x=ex,
            y=ey,
            mode="lines",
            line={"width": 1, "color": "#b0b0b0"},
            hoverinfo="skip",
            name="edges",
            showlegend=False,
        ),
        dict(
            type="scatter",
            x=mx,
            y=my,
            mode="markers",
            marker={"size": 6, "color": "#b0b0b0", "symbol": "diamond"},
            hovertext=labels,
            hoverinfo="text",
            name="relations",
            showlegend=False,
        ),
        dict(
            type="scatter",
            x=[pos[n["id"]][0] for n in nodes],
            y=[pos[n["id"]][1] for n in nodes],
            mode="markers+text",
            text=[n["id"] + STATE_LABELS.get(n["state_kind"], "") for n in nodes],
            textposition="top center",
            marker={
                "size": sizes,
                "color": [STATE_COLOURS.get(n["state_kind"], "#4c78a8") for n in nodes],
                "line": {"width": 1, "color": "white"},
            },
            customdata=[n["id"] for n in nodes],
            hovertext=[_node_hover(n) for n in nodes],
            hoverinfo="text",
            name="characters",
            showlegend=False,
        ),
    ]


def _node_hover(n: dict[str, Any]) -> str:
    lines = [f"<b>{html.escape(n['id'])}</b>", f"出场 {n['appearances']} 章"]
    if n["state"]:
        lines.append("现状：" + html.escape(n["state"][:40]))
    return "<br>".join(lines)


def _base_layout(title: str, height: int) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "height": height,
        "margin": {"l": 40, "r": 20, "t": 50, "b": 40},
        "font": {"family": FONT},
        "plot_bgcolor": "white",
    }


def graph_figure_dict(
    graph: dict[str, Any], pos: dict[str, tuple[float, float]], *, frames: list[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The relationship graph at ``graph["chapter"]`` as a plain figure dict; ``frames`` (graphs at other
    chapters) add a slider."""
    axis = {"visible": False, "showgrid": False, "zeroline": False}
    layout = _base_layout(f"人物关系（截至第{graph['chapter']}章）", 620) | {"xaxis": axis, "yaxis": axis}
    out: dict[str, Any] = {"data": _graph_traces(graph, pos), "layout": layout}
    if frames:
        out["frames"] = [{"data": _graph_traces(g, pos), "name": str(g["chapter"])} for g in frames]
        steps = [
            {
                "label": str(g["chapter"]),
                "method": "animate",
                "args": [
                    [str(g["chapter"])],
                    {
                        "mode": "immediate",
                        "frame": {"duration": 0, "redraw": True},
                        "transition": {"duration": 0},
                    },
                ],
            }
            for g in frames
        ]
        active = next((i for i, g in enumerate(frames) if g["chapter"] == graph["chapter"]), len(frames) - 1)
        layout["sliders"] = [{"steps": steps, "active": active, "currentvalue": {"prefix": "截至第"}}]
    return out


def graph_figure(
    graph: dict[str, Any], pos: dict[str, tuple[float, float]], *, frames: list[dict[str, Any]] = ()
) -> Any:
    """:func:`graph_figure_dict` as a ``plotly`` Figure (what ``gr.Plot`` shows)."""
    import plotly.graph_objects as go

    return go.Figure(graph_figure_dict(graph, pos, frames=frames))


def timeline_figure(data: dict[str, Any], last_chapter: int) -> Any:
    """Swimlanes (a heatmap of who appears where), events, threads as spans, volumes as bands."""
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lanes = data["lanes"]
    width = max([last_chapter, 1] + [max(r["chapters"], default=0) for r in lanes])
    threads = data["threads"]
    rows = 2 if threads or data["events"] else 1
    fig = make_subplots(
        rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.7, 0.3][:rows]
    )
    names = [r["name"] for r in lanes]
    z = np.zeros((len(lanes), width), dtype=np.int8)  # an array: plotly checks nested lists slowly
    for i, r in enumerate(lanes):
        for c in r["chapters"]:
            if 1 <= c <= width:
                z[i, c - 1] = 1
    fig.add_trace(
        go.Heatmap(
            z=z,
            x=list(range(1, width + 1)),
            y=names,
            showscale=False,
            colorscale=[[0, "#f4f4f4"], [1, "#4c78a8"]],
            hovertemplate="%{y}：第%{x}章<extra></extra>",
            xgap=1,
            ygap=1,
            name="appearances",
        ),
        row=1,
        col=1,
    )
    if rows == 2:
        for i, th in enumerate(threads):
            start = th["start"] or 1
            colour = {"overdue": "#e45756", "closed": "#54a24b", "due": "#f58518"}.get(
                th["status"], "#72b7b2"
            )
            fig.add_trace(
                go.Bar(
                    x=[max(1, th["end"] - start + 1)],
                    y=[f"伏笔：{th['name']}"],
                    base=[start - 0.5],
                    orientation="h",
                    marker={"color": colour},
                    showlegend=False,
                    hovertext=f"{th['name']}：第{start}章埋下"
                    + (f"，计划第{th['planned']}章回收" if th["planned"] else "")
                    + ("（已超期）" if th["status"] == "overdue" else ""),
                    hoverinfo="text",
                    name=f"thread{i}",
                ),
                row=2,
                col=1,
            )
        if data["events"]:
            fig.add_trace(
                go.Scatter(
                    x=[e["chapter"] for e in data["events"]],
                    y=["事件"] * len(data["events"]),
                    mode="markers",
                    marker={"size": [6 + 2 * e["importance"] for e in data["events"]], "color": "#b279a2"},
                    hovertext=[f"第{e['chapter']}章 {e['name']}：{e['text'][:60]}" for e in data["events"]],
                    hoverinfo="text",
                    showlegend=False,
                    name="events",
                ),
                row=2,
                col=1,
            )
    for j, v in enumerate(data["volumes"]):
        fig.add_vrect(
            x0=v["first"] - 0.5,
            x1=v["last"] + 0.5,
            fillcolor="#eeeeee" if j % 2 else "#fafafa",
            opacity=0.5,
            layer="below",
            line_width=0,
            annotation_text=v["title"][:12],
            annotation_position="top left",
        )
    height = 260 + 18 * len(lanes) + (24 * (len(threads) + 1) if rows == 2 else 0)
    fig.update_layout(**_base_layout("时间线：人物出场 · 事件 · 伏笔", min(height, 2400)), barmode="overlay")
    fig.update_xaxes(title_text="章", row=rows, col=1)
    return fig


def dashboard_figure(data: dict[str, Any]) -> Any:
    """字 per chapter against its target, 字 written per day, chapters by status."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=3, cols=1, vertical_spacing=0.12, subplot_titles=("每章字数与目标", "每日写作字数", "章节状态")
    )
    rows = data["chapters"]
    x = [r["number"] for r in rows]
    fig.add_trace(
        go.Bar(
            x=x,
            y=[r["chars"] for r in rows],
            name="字数",
            marker={"color": "#4c78a8"},
            hovertext=[f"第{r['number']}章 {r['title']}" for r in rows],
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[r["target_chars"] for r in rows],
            name="目标",
            mode="lines",
            line={"color": "#e45756", "dash": "dot"},
        ),
        row=1,
        col=1,
    )
    days = data["per_day"]
    fig.add_trace(
        go.Bar(x=list(days), y=list(days.values()), name="每日字数", marker={"color": "#54a24b"}),
        row=2,
        col=1,
    )
    counts = data["status_counts"]
    fig.add_trace(
        go.Bar(
            x=[STATUS_LABELS.get(k, k) for k in counts],
            y=list(counts.values()),
            name="章数",
            marker={"color": "#f58518"},
        ),
        row=3,
        col=1,
    )
    fig.update_layout(**_base_layout(dashboard_title(data), 900), showlegend=False)
    fig.update_xaxes(type="category", row=2, col=1)  # days, not a time axis with millisecond ticks
    return fig


def dashboard_title(data: dict[str, Any]) -> str:
    return (
        f"共 {data['total_chars']:,} 字 / 计划 {data['target_chars']:,} 字（{data['progress']:.0%}）"
        f" · 连续写作 {data['streak']} 天 · 待审阅 {data['pending_reviews']} 条"
    )


def slider_chapters(last: int, chosen: int, most: int = 40) -> list[int]:
    """Which chapters the HTML graph's slider offers: every chapter up to ``most``, else an even spread
    that always includes ``chosen`` and the last one."""
    if last <= most:
        return list(range(1, max(last, chosen, 1) + 1))
    step = last / most
    picked = {max(1, round(step * (i + 1))) for i in range(most)} | {chosen, last}
    return sorted(picked)


def report_html(overview: dict[str, Any], frames: list[dict[str, Any]], pos: dict[str, Any]) -> str:
    """One self-contained HTML document of the three views (plotly.js inline; nothing fetched)."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    graph = graph_figure_dict(overview["graph"], pos, frames=frames)
    parts = [
        pio.to_html(
            graph, full_html=False, include_plotlyjs=False, div_id="graph", auto_play=False, validate=False
        ),
        '<div id="card" class="card">点击人物查看卡片、状态变化与出场章节。</div>',
        timeline_figure(overview["timeline"], overview["last_written"]).to_html(
            full_html=False, include_plotlyjs=False, div_id="timeline"
        ),
        dashboard_figure(overview["dashboard"]).to_html(
            full_html=False, include_plotlyjs=False, div_id="dash"
        ),
    ]
    cards = {n["id"]: n for g in [*frames, overview["graph"]] for n in g["nodes"]}
    title = html.escape(overview["title"])
    data = json.dumps(cards, ensure_ascii=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>《{title}》总览</title>
<style>body{{font-family:{FONT};margin:16px}} .card{{border:1px solid #ddd;padding:8px;margin:8px 0;
min-height:3em;white-space:pre-wrap}}</style>
<script>{get_plotlyjs()}</script></head><body>
<h1>《{title}》总览</h1>
{"".join(parts)}
<script>
const CARDS = {data};
document.getElementById("graph").on("plotly_click", function (ev) {{
  const p = ev.points[0]; if (!p || !p.customdata) return;
  const n = CARDS[p.customdata]; if (!n) return;
  const hist = n.history.map(h => "第" + h.chapter + "章：" + h.state).join("\\n");
  const names = n.id + (n.aliases.length ? "（又名：" + n.aliases.join("、") + "）" : "");
  document.getElementById("card").textContent = names + "\\n" + (n.text || "")
    + (n.state ? "\\n现状：" + n.state : "") + (hist ? "\\n状态变化：\\n" + hist : "")
    + "\\n出场章节：" + (n.chapters.join("、") || "无");
}});
</script></body></html>
"""
