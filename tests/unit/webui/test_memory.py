"""The 记忆 page's handlers without a browser: ``webui.pages.memory.handlers`` over ``Services``.

A real Chroma store under tmp_path (embedding model "none": BM25 and name triggers), real novel folders;
no model is needed (the engine holder is a stub that is never asked).  The page in a browser is
``tests/e2e/test_webui.py::test_memory_character_reaches_the_context_inspector``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import gradio as gr
import pytest

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.pages.memory import handlers as m
from xiaoshuo.webui.pages.memory.layout import build_memory_tab

NOVEL = "yuye"
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


LIN = {
    "name": "林远",
    "aliases": "阿远，小林",
    "text": "青云山弟子，沉默寡言",
    "traits": "沉稳、重情",
    "relations": "苏晚晴=师妹；萧寒=宿敌",
    "state": "左臂受伤",
    "chapter": None,
    "importance": 4,
    "pinned": True,
}


def _cells(table: dict) -> list[str]:
    return [str(c) for row in table["data"] for c in row]


def test_table_has_chinese_headers_character_columns_no_ids_and_blank_chapter(services) -> None:
    lin_id, msg = m.add_entry(services, NOVEL, "character", LIN)
    assert msg == "已添加：林远"
    su_id, _ = m.add_entry(
        services, NOVEL, "character", {"name": "苏晚晴", "text": "药王谷传人", "chapter": 3}
    )
    table, ids = m.rows(services, NOVEL, "character")
    assert table["headers"] == [
        "序号",
        "名称",
        "别名",
        "内容",
        "性格",
        "关系",
        "现状",
        "章节",
        "重要度",
        "置顶",
        "来源",
    ]
    assert ids == [lin_id, su_id]
    lin, su = (dict(zip(table["headers"], row, strict=True)) for row in table["data"])
    assert lin["序号"] == 1 and su["序号"] == 2
    assert (lin["名称"], lin["别名"], lin["性格"]) == ("林远", "阿远、小林", "沉稳、重情")
    assert lin["关系"] == "苏晚晴：师妹；萧寒：宿敌" and lin["现状"] == "左臂受伤"
    assert (lin["章节"], su["章节"]) == ("", "3")  # never 0 / None / NaN
    assert (lin["重要度"], lin["置顶"], su["置顶"], lin["来源"]) == (4, "是", "", "手动")
    cells = _cells(table)
    assert not any(HEX_ID.match(c) or c in ("None", "nan") for c in cells)
    assert lin_id not in " ".join(cells)
    # other kinds have their own columns; English headers for webui.language = "en"
    m.add_entry(
        services, NOVEL, "dialogue", {"characters": "苏晚晴", "text": "“你终于来了。”", "why": "重逢"}
    )
    dialogue, _ = m.rows(services, NOVEL, "dialogue")
    assert dialogue["headers"][:4] == ["序号", "说话人", "内容", "为何重要"]
    assert dialogue["data"][0][1:4] == ["苏晚晴", "“你终于来了。”", "重逢"]
    assert m.rows(services, NOVEL, "setting", "en")[0]["headers"][:3] == ["No.", "Name", "Aliases"]
    assert m.rows(services, NOVEL, "plot")[0]["data"] == []


def test_select_row_edit_survives_reopening_the_store(services) -> None:
    m.add_entry(services, NOVEL, "character", {"name": "萧寒", "text": "魔教少主"})
    lin_id, _ = m.add_entry(services, NOVEL, "character", {**LIN, "chapter": 2})
    table, ids = m.rows(services, NOVEL, "character")
    row = table["data"][1]  # what Gradio's SelectData.row_value carries for a click on 林远's row
    entry_id, form = m.select_entry(services, NOVEL, ids, row)
    assert entry_id == lin_id
    assert form["name"] == "林远" and form["aliases"] == "阿远、小林" and form["chapter"] == "2"
    assert form["relations"] == "苏晚晴=师妹；萧寒=宿敌" and form["pinned"] is True

    form.update(state="伤愈，已是内门弟子", traits="沉稳、重情、果断", chapter="", aliases="阿远")
    assert m.edit_entry(services, NOVEL, entry_id, form) == "已修改：林远"
    services.close_store()  # the change is on disk, not only in this process's objects
    again = services.store().get(lin_id, NOVEL)
    assert again.state == "伤愈，已是内门弟子"
    assert again.traits == ["沉稳", "重情", "果断"] and again.aliases == ["阿远"]
    assert again.chapter is None  # a chapter can be cleared
    assert again.relationships == {"苏晚晴": "师妹", "萧寒": "宿敌"} and again.kind == "character"
    table, _ = m.rows(services, NOVEL, "character")
    assert table["data"][1][6] == "伤愈，已是内门弟子" and table["data"][1][7] == ""
    assert services.store().count(NOVEL) == 2  # edited in place, not added


def test_delete_by_selected_row_and_errors_without_a_selection(services) -> None:
    keep, _ = m.add_entry(services, NOVEL, "setting", {"name": "青云山", "text": "九座仙山之一"})
    gone, _ = m.add_entry(services, NOVEL, "setting", {"name": "药王谷", "text": "南疆深处"})
    table, ids = m.rows(services, NOVEL, "setting")
    entry_id, _ = m.select_entry(services, NOVEL, ids, table["data"][1])
    assert entry_id == gone
    assert m.delete_entry(services, NOVEL, entry_id) == "已删除：药王谷"
    services.close_store()
    assert [e.id for e in services.store().list(NOVEL)] == [keep]
    with pytest.raises(XiaoshuoError, match="请先在表格里点选"):
        m.delete_entry(services, NOVEL, None)
    with pytest.raises(XiaoshuoError, match="请先在表格里点选"):
        m.edit_entry(services, NOVEL, "", {"name": "x", "text": "y"})
    with pytest.raises(XiaoshuoError, match="请先在表格里点选"):
        m.select_entry(services, NOVEL, [keep], [5, "青云山"])  # a stale row
    with pytest.raises(XiaoshuoError, match="no such entry"):
        m.delete_entry(services, NOVEL, gone)  # deleted already (e.g. in another tab)
    with pytest.raises(XiaoshuoError, match="人物=关系"):
        m.add_entry(services, NOVEL, "character", {"name": "甲", "text": "乙", "relations": "师妹"})
    for bad in ("三", "-1", "3.5"):
        with pytest.raises(XiaoshuoError, match="章节要填一个整数"):
            m.add_entry(services, NOVEL, "plot", {"text": "乙", "chapter": bad})
    m.add_entry(services, NOVEL, "plot", {"text": "入门", "chapter": " 第0章 "})
    m.add_entry(services, NOVEL, "plot", {"text": "下山", "chapter": "  "})
    assert [row[-4] for row in m.rows(services, NOVEL, "plot")[0]["data"]] == ["0", ""]


def test_heading_names_the_novel_by_title_and_slug(services) -> None:
    from xiaoshuo.writing import Novels

    Novels.from_settings(services.settings).create(NOVEL, title="雨夜剑")
    m.add_entry(services, NOVEL, "character", {"name": "林远", "text": "青云山弟子"})
    assert m.heading(services, NOVEL) == "当前小说：**《雨夜剑》** `yuye` · 共 1 条记忆"
    other = m.heading(services, "default")  # memory without a book: the slug alone
    assert "`default`" in other and "雨夜剑" not in other and "共 0 条" in other
    assert "`default`" in m.heading(services, None)


def test_search_results_are_a_readable_table(services) -> None:
    long_text = "青云山弟子，" + "剑意如雨" * 30
    m.add_entry(
        services, NOVEL, "character", {"name": "林远", "aliases": "阿远", "text": long_text, "chapter": 5}
    )
    m.add_entry(services, NOVEL, "setting", {"name": "青云山", "text": "九座仙山之一"})
    result = m.search_rows(services, NOVEL, "阿远回到了青云山")
    assert result["headers"] == ["名称", "类型", "章节", "得分", "命中方式", "内容"]
    by_name = {row[0]: row for row in result["data"]}
    assert set(by_name) == {"林远", "青云山"}
    lin = by_name["林远"]
    assert lin[1] == "人物" and lin[2] == "5" and "名字出现" in lin[4]
    assert len(lin[5]) == m.EXCERPT and lin[5].endswith("…")
    assert by_name["青云山"][1:3] == ["环境设定", ""]
    assert not any(HEX_ID.match(c) for c in _cells(result))


def test_import_export_stats_and_reindex_in_words(services, tmp_path: Path) -> None:
    m.add_entry(services, NOVEL, "character", {"name": "林远", "text": "青云山弟子"})
    m.add_entry(services, NOVEL, "plot", {"name": "拜师", "text": "林远拜入青云山", "chapter": 1})
    exported = Path(m.export_file(services, NOVEL))
    assert not exported.is_relative_to(Path.cwd())  # a temp folder, never the checkout
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", "utf-8")
    with pytest.raises(XiaoshuoError, match="not valid JSON"):
        m.import_file(services, "copy", str(bad))
    assert services.store().count("copy") == 0
    assert m.import_file(services, "copy", str(exported)) == "已导入 2 条记忆"
    assert {e.name for e in services.store().list("copy")} == {"林远", "拜师"}

    stats = m.stats_markdown(services, NOVEL)
    assert "共 2 条记忆" in stats and "人物 1 · 情节 1 · 环境设定 0 · 重要对话 0" in stats
    assert "`none`" in stats and "{" not in stats
    done = m.reindex_markdown(services, NOVEL, False)
    assert done == "已用向量模型 `none` 重建索引：《yuye》2 条"
    assert m.rows(services, NOVEL, "plot")[0]["data"][0][1] == "拜师"
    assert "《copy》2 条" in m.reindex_markdown(services, NOVEL, True)
    json.loads(exported.read_text("utf-8"))


def test_page_builds_with_no_entry_id_box(services) -> None:
    with gr.Blocks() as demo:
        novel = gr.Dropdown([NOVEL], value=NOVEL)
        build_memory_tab(services, "zh", novel)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {
        "memory-table",
        "memory-name",
        "memory-add",
        "memory-edit",
        "memory-delete",
        "memory-novel",
    } <= ids
    assert "memory-id" not in ids
    labels = [getattr(b, "label", None) or "" for b in demo.blocks.values()]
    assert "名称" in labels and not any(lbl.startswith("Entry id") for lbl in labels)


def test_the_pages_events_return_what_the_layout_wires(services) -> None:
    """The events (formerly closures inside the layout) are plain functions: add → select → delete, and
    a kind shows only its fields — each returns one value per wired output."""
    values = [LIN.get(f, "") for f in m.FORM_FIELDS]
    heading, table, ids, selected, _, message = m.on_add(services, "zh", NOVEL, "character", *values)
    assert "yuye" in heading and len(ids) == 1 and selected is None and message == "已添加：林远"
    entry_id, shown, *form = m.on_select(services, "zh", NOVEL, ids, table["data"][0])
    assert entry_id == ids[0] and "林远" in shown and len(form) == len(m.FORM_FIELDS)
    out = m.on_delete(services, "zh", NOVEL, "character", entry_id)
    assert len(out) == 6 + len(m.FORM_FIELDS) and out[2] == [] and out[5] == "已删除：林远"
    assert list(out[6:]) == m.form_values(m.empty_form())
    kind = m.on_kind(services, "zh", NOVEL, "dialogue")
    visible = dict(zip(m.FORM_FIELDS, [u["visible"] for u in kind[5:]], strict=True))
    assert visible["why"] and visible["characters"] and not visible["traits"] and not visible["aliases"]
    with pytest.raises(XiaoshuoError):  # no row selected: the page's words (guard shows them)
        m.on_delete(services, "zh", NOVEL, "character", None)
