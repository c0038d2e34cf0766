"""The 总览 page's handlers without a browser: a real novel and a real Chroma store (no embedding model).

The slider redraws from what the load read: moving it past the chapter that recorded a relation adds the
edge, moving it back removes it (issue 24's chapter-aware rule, seen through the page).
"""

from __future__ import annotations

import gradio as gr

from xiaoshuo.memory import make_entry
from xiaoshuo.webui.pages.overview import handlers as h
from xiaoshuo.webui.pages.overview.layout import build_overview_tab
from xiaoshuo.writing import Novels


def _book(services) -> None:
    novel = Novels.from_settings(services.settings).create("yuye", title="雨夜", chapter_chars=500)
    chapters = [{"title": f"第{n}回"} for n in range(1, 13)]
    with novel.writer():
        novel.import_outline({"volumes": [{"title": "卷一", "chapters": chapters}]})
        for n in (1, 5, 10):
            novel.set_text(n, "林远与白露在雨里走。" * 20)

    def c(name, ch=None, **f):
        return make_entry(novel="yuye", kind="character", name=name, text=name, chapter=ch, **f)

    services.store().add(
        [c("林远"), c("白露", 5), c("林远", 10, relationships={"白露": "仇人"}, state="重伤")]
    )


def test_the_slider_shows_only_what_is_known_at_the_chapter(services) -> None:
    _book(services)
    snap, warning = h.load(services, "yuye", None, "zh")
    assert warning == "" and snap.data["chapter"] == 10 and h.slider_max(snap) == 12
    at9, at10 = h.graph(snap, 9), h.graph(snap, 10)
    assert at9["edges"] == [] and [(e["source"], e["target"]) for e in at10["edges"]] == [("林远", "白露")]
    assert h.character_choices(snap, 4) == ["林远"]  # 白露 is first recorded in chapter 5
    assert "仇人" not in str(h.figures(snap, 9)[0].to_dict()) and "仇人" in str(
        h.figures(snap, 10)[0].to_dict()
    )
    card = h.character_card(snap, "林远", 10, "zh")
    assert "第10章 重伤" in card and "出场章节：1、5、10" in card
    assert "还没有" in h.character_card(snap, "白露", 4, "zh")
    assert "共 600 字" in h.summary(snap, 10, "", "zh")


def test_no_novel_shows_a_hint_and_no_figures(services) -> None:
    snap, _ = h.load(services, "", None, "zh")
    assert snap is None and h.figures(None, 1) == (None, None, None)
    assert "创作" in h.summary(None, 1, "", "zh")


def test_the_tab_builds(services) -> None:
    with gr.Blocks():
        novel = gr.Dropdown(["yuye"], value="yuye")
        build_overview_tab(services, "zh", novel)
