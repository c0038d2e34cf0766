"""The WebUI's strings live in the locale table (zh and en); ``webui.language = "en"`` gives English pages.

1. A hygiene check: a WebUI module (every ``.py`` under ``src/xiaoshuo/webui`` but the table itself, the page
   folders ``webui/pages/<page>/`` included) holds no string constant with Chinese characters except
   docstrings and novel content (module-level ``CONTENT_*`` constants: a default chapter title, the request
   the model is sent), so a hard-coded Chinese label fails CI.
2. Every key used as ``t("key", …)`` in ``src/xiaoshuo/webui`` exists in the table.
3. The app built with ``webui.language = "en"`` shows the book page's labels and headers in English.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import xiaoshuo.webui.locale as locale_pkg

WEBUI = Path(locale_pkg.__file__).parent.parent  # src/xiaoshuo/webui (a namespace package)
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


# Not page modules: the login middleware answers before any page exists, in both languages at once.
NOT_PAGES = {"security.py"}


def page_modules() -> list[str]:
    """Every WebUI module whose strings must come from the table: all of ``webui/`` but ``locale/``."""
    found = (
        str(p.relative_to(WEBUI)) for p in WEBUI.rglob("*.py") if "locale" not in p.relative_to(WEBUI).parts
    )
    return sorted(m for m in found if m not in NOT_PAGES)


CHECKED = page_modules()


def test_the_hygiene_check_finds_every_page_module() -> None:
    """The file list is globbed (a page moved into ``webui/pages/<page>/`` stays checked) and finds them."""
    for page in ("book", "scratch", "memory", "train", "settings", "downloads"):
        assert f"pages/{page}/layout.py" in CHECKED and f"pages/{page}/handlers.py" in CHECKED
    assert {"app.py", "runtime.py", "errors.py", "services.py", "downloads.py", "launch.py"} <= set(CHECKED)
    assert not any(m.startswith("locale/") for m in CHECKED)


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _content_nodes(tree: ast.Module) -> set[int]:
    """String constants assigned at module level to a ``CONTENT_*`` name (novel/model text, not page text)."""
    ids = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if (
            isinstance(node, (ast.Assign, ast.AnnAssign))
            and node.value is not None
            and all(isinstance(t, ast.Name) and t.id.startswith("CONTENT_") for t in targets)
        ):
            ids |= {id(n) for n in ast.walk(node.value)}
    return ids


def hard_coded_chinese(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every string constant with a Chinese character that is not allowed."""
    tree = ast.parse(source)
    allowed = _docstring_nodes(tree) | _content_nodes(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and CJK.search(node.value)
        and id(node) not in allowed
    ]


@pytest.mark.parametrize("module", CHECKED)
def test_no_hard_coded_chinese_in_page_modules(module: str) -> None:
    found = hard_coded_chinese((WEBUI / module).read_text("utf-8"))
    assert not found, f"webui/{module}: move these strings into webui/locale (zh + en): {found}"


def test_the_hygiene_check_catches_a_hard_coded_label() -> None:
    """The checker itself: a Chinese label (also inside an f-string) fails; docstrings and CONTENT_ pass."""
    source = '''
"""模块说明。"""
CONTENT_TITLE = "第{number}章"
def f(x):
    """函数说明。"""
    label = "保存"
    return f"已保存 {x}"
'''
    assert [text for _, text in hard_coded_chinese(source)] == ["保存", "已保存 "]


def _t_keys() -> list[tuple[str, int, str]]:
    """``(file, line, key)`` of every ``t("key", …)`` call with a constant key in src/xiaoshuo/webui."""
    used = []
    for path in sorted(WEBUI.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("t", "L")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                used.append((str(path.relative_to(WEBUI)), node.lineno, node.args[0].value))
    return used


def test_every_key_used_is_in_the_table() -> None:
    from xiaoshuo.webui.locale import STRINGS

    used = _t_keys()
    assert len(used) > 100  # the scan found the calls (a broken scan would pass vacuously)
    missing = [(f, line, key) for f, line, key in used if key not in STRINGS]
    assert not missing, f"keys used but not in webui/locale: {missing}"


def test_book_table_keys_are_complete() -> None:
    """The keys the book page builds at run time (``book_cols_*``, ``book_status_*`` …) resolve."""
    from xiaoshuo.webui.pages.book import handlers as h

    for table in ("outline", "versions", "inspector", "review", "findings", "threads"):
        zh, en = h.headers(table, "zh"), h.headers(table, "en")
        assert len(zh) == len(en) > 1 and zh != en
    assert h.label("status", "drafted", "zh") == "草稿" and h.label("status", "drafted", "en") == "Draft"
    assert h.label("kind", "outside-edit", "en") == "Edited outside"
    assert h.label("thread", "overdue", "en") == "Overdue"
    assert h.label("rkind", "no-such-kind", "en") == "no-such-kind"  # an unknown value shows as it is
    assert h.progress_text({}, 2, lang="en").startswith("Writing · Candidate 1")
    assert h.chars_label("夜雨。", 300, "en") == "Chars 3 / target 300"


# ----------------------------------------------------------------------------- the English app
def _build(make_services, root: Path, language: str):
    """The app in ``language`` with its data under ``root``; no model (building it does not need one)."""
    from xiaoshuo.webui.app import build_app

    paths = {f"paths.{name}": str(root / name) for name in ("data_dir", "checkpoints_dir", "logs_dir")}
    services = make_services(overrides={**paths, "webui.language": language})
    return build_app(services), services


def _by_id(demo) -> dict[str, object]:
    return {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def test_the_app_in_english(make_services, tmp_path: Path) -> None:
    demo, _ = _build(make_services, tmp_path / "en", "en")
    zh_demo, _ = _build(make_services, tmp_path / "zh", "zh")
    en, zh = _by_id(demo), _by_id(zh_demo)
    expected = {
        "book-new-acc": ("New novel", "新建小说"),
        "book-new-title": ("Title", "书名"),
        "book-write": ("Write this chapter", "生成本章"),
        "book-save": ("Save", "保存"),
        "book-review-acc": ("Memory to review", "待审记忆"),
        "book-selection": (
            "(select text in the editor to rewrite it)",
            "（在正文里选中一段文字即可改写）",
        ),
        "request": ("Writing request", "写作要求"),
    }
    for elem_id, (english, chinese) in expected.items():
        shown_en = getattr(en[elem_id], "label", None) or getattr(en[elem_id], "value", None)
        shown_zh = getattr(zh[elem_id], "label", None) or getattr(zh[elem_id], "value", None)
        assert (shown_en, shown_zh) == (english, chinese), elem_id
    assert en["book-outline"].headers == ["Ch.", "Volume", "Title", "Status", "Chars", "Target"]
    assert zh["book-outline"].headers == ["章", "卷", "标题", "状态", "字数", "目标"]
    assert en["book-threads"].headers[0] == "Thread" and en["book-review"].headers[0] == "No."
    # the live character count runs in the browser: its words come from the table too
    js = [d.get("js") for d in demo.config["dependencies"] if d.get("js") and "replace('{n}'" in d["js"]]
    assert js and '"Chars {n}"' in js[0]


def test_handler_messages_follow_the_page_language(make_services, tmp_path: Path) -> None:
    """A message made by the page's handlers is English on an English page (and Chinese by default)."""
    from xiaoshuo.errors import XiaoshuoError
    from xiaoshuo.webui.pages.book import handlers as h

    _demo, services = _build(make_services, tmp_path, "en")
    with pytest.raises(XiaoshuoError) as en:
        h.create_novel(services, "x", "  ", lang="en")
    # (the error's own frame, "解决 fix:", is the library's bilingual format)
    assert (en.value.message, en.value.fix) == (
        "A title is required",
        "Write the book's name under Title",
    )
    with pytest.raises(XiaoshuoError, match="请填写书名"):
        h.create_novel(services, "x", "  ")
    h.create_novel(services, "yu", "雨夜剑", chapter_chars=300, lang="en")
    h.add_chapter(services, "yu", "夜雨", lang="en")
    assert h.outline_rows(services, "yu", lang="en")[0][3] == "Planned"
    assert h.chapter_view(services, "yu", 1, lang="en").header == "### Chapter 1 夜雨 · Planned"
    assert h.chapter_view(services, "yu", 1).header == "### 第1章 夜雨 · 未写"
    with pytest.raises(XiaoshuoError) as no_sel:
        import asyncio

        async def first():
            async for _ in h.write_stream(services, "yu", 1, "rewrite", lang="en"):
                break

        asyncio.run(first())
    assert no_sel.value.message == "Select the passage first"
