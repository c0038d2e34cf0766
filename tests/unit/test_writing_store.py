"""Where a book's text lives and who may change it: 随手写's scratch store apart from novels, empty texts
refused, readers that never wait for a writer, damaged novels listed and repairable, chapters 10000+.

Real files in ``tmp_path``; the CLI runs in process (``xiaoshuo.cli.main``) except where a second
process is the point (a writer holding the lock).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from xiaoshuo.cli import main
from xiaoshuo.config import load
from xiaoshuo.files import atomic_write, atomic_write_json
from xiaoshuo.testing import EngineHolderStub
from xiaoshuo.writing import NovelLockedError, Novels, WritingError
from xiaoshuo.writing.scratch import MIGRATION_RECORD, Scratch, migrate_stories


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, clean_env) -> None:
    clean_env.chdir(tmp_path)  # the in-process CLI runs where nothing of the checkout can be touched


def settings_for(tmp_path: Path):
    return load(None, overrides={"paths.data_dir": str(tmp_path / "data")}, env={})


@pytest.fixture
def lib(tmp_path: Path) -> Novels:
    return Novels.from_settings(settings_for(tmp_path))


def cli(tmp_path: Path, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--set", f"paths.data_dir={tmp_path / 'data'}", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def old_stories(data: Path, stories: dict[str, str], adapters: dict[str, str] | None = None) -> Path:
    """``data/stories/`` as the old 创作 page and 随手写 left it (sha1-named files + index.json)."""
    folder = data / "stories"
    index = {}
    for name, text in stories.items():
        file = Scratch(folder).path(name).name
        atomic_write(folder / file, text)
        index[file] = name
    atomic_write_json(folder / "index.json", index)
    if adapters:
        atomic_write_json(folder / "adapters.json", adapters)
    return folder


# ----------------------------------------------------------------------------- item 2: 随手写 is not a book
def test_scratch_under_a_books_name_never_changes_its_chapter(lib: Novels, tmp_path: Path) -> None:
    data = tmp_path / "data"
    book = lib.create("yuye", title="雨夜剑")
    book.set_text(1, "第一章的正文。")
    before = [v.id for v in book.versions(1)]
    old_stories(data, {"yuye": "随手写的草稿。" * 5, "default": "默认草稿。"})

    assert sorted(migrate_stories(data)) == ["default", "yuye"]  # the explicit, one-time move
    for _ in range(2):  # opening and listing novels (the WebUI builds a new Novels per call)
        fresh = Novels.from_settings(settings_for(tmp_path))
        assert [c.slug for c in fresh.list()] == ["yuye"]  # no novel made from a scratch text
        assert fresh.get("yuye").text(1) == "第一章的正文。"
    scratch = Scratch.from_settings(settings_for(tmp_path))
    assert scratch.load("yuye") == "随手写的草稿。" * 5 and scratch.load("default") == "默认草稿。"
    scratch.save("yuye", "随手写的新草稿。")
    novel = Novels.from_settings(settings_for(tmp_path)).get("yuye")
    assert novel.text(1) == "第一章的正文。" and [v.id for v in novel.versions(1)] == before
    assert not scratch.root.is_relative_to(lib.root) and not lib.root.is_relative_to(scratch.root)


def test_the_stories_migration_runs_once_and_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stories = {"归途": "旧的故事。" * 10, "雨夜": "雨夜旧稿。"}
    folder = old_stories(data, stories, adapters={"归途": "urban-v1"})
    kept = Scratch(folder).versions_dir("归途") / "20250101T000000-000000001.txt"
    atomic_write(kept, "更早的一版。")
    scratch = Scratch(data / "scratch")
    scratch.save("雨夜", "新页面上已经写了别的。")  # a name that already has a different scratch text

    assert sorted(migrate_stories(data)) == ["归途", "雨夜"]
    assert scratch.load("归途") == "旧的故事。" * 10 and scratch.adapter("归途") == "urban-v1"
    assert [p.read_text("utf-8") for p in scratch.versions("归途")] == ["更早的一版。"]
    assert scratch.load("雨夜") == "新页面上已经写了别的。"  # kept; the old text becomes a version
    assert [p.read_text("utf-8") for p in scratch.versions("雨夜")] == ["雨夜旧稿。"]
    assert json.loads((scratch.root / MIGRATION_RECORD).read_text("utf-8"))["names"]

    atomic_write(Scratch(folder).path("归途"), "迁移之后又改了旧文件。")
    assert migrate_stories(data) == []  # recorded: never again
    assert scratch.load("归途") == "旧的故事。" * 10
    assert (folder / "index.json").is_file()  # the old folder is left as it was


def test_the_webui_moves_old_stories_when_it_starts_and_the_page_saves_apart(tmp_path: Path) -> None:
    from xiaoshuo.webui.pages.scratch import handlers as page
    from xiaoshuo.webui.services import Services

    settings = settings_for(tmp_path)
    book = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    book.set_text(1, "书的第一章。")
    old_stories(tmp_path / "data", {"yuye": "旧草稿。"})
    services = Services(settings, engine=EngineHolderStub(None, state="ready"))
    try:
        assert services.scratch.load("yuye") == "旧草稿。"
        assert "yuye" in services.novels()
        page.autosave(services, "yuye", "页面上的草稿。")
        assert services.scratch.load("yuye") == "页面上的草稿。"
        assert Novels.from_settings(settings).get("yuye").text(1) == "书的第一章。"
    finally:
        services.close()


# ----------------------------------------------------------------------------- item 5: empty texts
def test_an_empty_text_is_refused_unless_allowed(lib: Novels, tmp_path: Path, capsys) -> None:
    novel = lib.create("yuye", title="雨夜剑")
    novel.set_text(1, "原来的正文。")
    for empty in ("", "  \n\u3000\t\n"):
        with pytest.raises(WritingError, match="空") as err:
            novel.set_text(1, empty)
        assert "--allow-empty" in str(err.value)
    assert novel.text(1) == "原来的正文。" and len(novel.versions(1)) == 1

    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n", "utf-8")
    code, _, err = cli(tmp_path, capsys, "chapter", "set", "--novel", "yuye", "1", "--file", str(blank))
    assert code == 2 and "--allow-empty" in err and novel.text(1) == "原来的正文。"
    args = ("chapter", "set", "--novel", "yuye", "1", "--file", str(blank), "--allow-empty")
    code, _, err = cli(tmp_path, capsys, *args)
    assert code == 0, err
    assert novel.text(1) == "\n \n" and novel.versions(1)[0].text == "原来的正文。"


def test_the_pages_save_refuses_an_emptied_editor(tmp_path: Path) -> None:
    from xiaoshuo.errors import XiaoshuoError
    from xiaoshuo.webui.pages.book import handlers as h

    services = _services(tmp_path)
    try:
        h.create_novel(services, "yuye", "雨夜剑")
        h.add_chapter(services, "yuye", "夜雨", "要点")
        h.add_chapter(services, "yuye", "客栈", "要点")
        assert h.save_text(services, "yuye", 1, "夜雨落在青石街上。")
        with pytest.raises(XiaoshuoError, match="空"):
            h.save_text(services, "yuye", 1, "   ")
        novel = h.open_novel(services, "yuye")
        assert novel.text(1) == "夜雨落在青石街上。" and len(novel.versions(1)) == 1
        assert h.save_text(services, "yuye", 2, "") is None  # an untouched empty chapter stays unwritten
        assert not novel.chapter_file(2).exists()
    finally:
        services.close()


# ----------------------------------------------------------------------------- item 8: readers never wait
HOLDER = """
import sys
from pathlib import Path
from xiaoshuo.writing import Novel
n = Novel(Path(sys.argv[1]), sys.argv[2])
with n.writer(what="write chapter 2"):
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes stdin
"""


def test_show_and_versions_run_while_another_process_writes(lib: Novels, tmp_path: Path) -> None:
    novel = lib.create("yuye", title="雨夜剑")
    novel.set_text(1, "第一章。")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(novel.root), "yuye"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "locked" not in line:
            assert time.monotonic() < deadline, "the holder never took the lock"
            line = holder.stdout.readline()
            assert line or holder.poll() is None, "the holder died"
        with pytest.raises(NovelLockedError):  # the lock is really held
            novel.set_text(1, "抢着写。")
        novel.chapter_file(1).write_text("在别的编辑器里改过。", "utf-8")
        env = {"XIAOSHUO_PATHS__DATA_DIR": str(tmp_path / "data")}
        from xiaoshuo.testing import run_cli

        started = time.monotonic()
        show = run_cli("chapter", "show", "--novel", "yuye", "1", "--json", cwd=tmp_path, env=env, timeout=60)
        versions = run_cli("chapter", "versions", "--novel", "yuye", "1", cwd=tmp_path, env=env, timeout=60)
        assert show.returncode == 0 and versions.returncode == 0, show.stderr + versions.stderr
        assert time.monotonic() - started < 30  # answered, not waited out
        shown = json.loads(show.stdout)
        assert shown["text"] == "在别的编辑器里改过。" and shown["outside_edit"] and shown["version"] is None
        assert "v1" in versions.stdout and "外部修改" in versions.stderr
        assert len(novel.versions(1)) == 1  # a reader records nothing
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    novel.set_text(2, "第二章。")  # the next writer (any chapter's write syncs only its own chapter)
    novel.accept(1, 1)  # …and a write on chapter 1 keeps the outside edit before replacing it
    assert [v.kind for v in novel.versions(1)] == ["set", "outside-edit"]
    assert novel.versions(1)[1].text == "在别的编辑器里改过。" and novel.text(1) == "第一章。"


def test_the_page_opens_chapters_while_a_chapter_of_the_book_generates(tmp_path: Path) -> None:
    """生成本章 holds the book's writer lock for minutes: opening, reading and blurring other chapters
    of the same book in the page must not need it (it used to raise NovelLockedError naming the page's
    own pid)."""
    from xiaoshuo import testing
    from xiaoshuo.webui.pages.book import handlers as h

    reached, release = threading.Event(), threading.Event()

    class Gated(testing.ScriptedEngine):
        def respond(self, request) -> str:
            reached.set()
            release.wait(60)
            return "夜雨敲窗。" * 20

    services = _services(tmp_path, engine=Gated())
    try:
        h.create_novel(services, "yuye", "雨夜剑", chapter_chars=100)
        for title in ("夜雨", "客栈", "断崖"):
            h.add_chapter(services, "yuye", title, f"{title}的要点")
        h.save_text(services, "yuye", 1, "第一章写好了。")
        h.save_text(services, "yuye", 2, "第二章写好了。")
        done: list = []

        def generate() -> None:
            import asyncio

            async def run():
                return [u async for u in h.write_stream(services, "yuye", 3, "chapter", memory_on=False)]

            try:
                done.append(asyncio.run(asyncio.wait_for(run(), 90)))
            except BaseException as exc:  # surfaced below
                done.append(exc)

        thread = threading.Thread(target=generate, daemon=True)
        thread.start()
        assert reached.wait(60), "the generation never reached the engine"
        with pytest.raises(NovelLockedError) as err:  # the generation holds the writer lock
            h.open_novel(services, "yuye").set_text(1, "抢着写。")
        assert "正在写入：write chapter 3" in str(err.value)  # says what this process is doing
        h.open_novel(services, "yuye").chapter_file(2).write_text("第二章在别处改过。", "utf-8")
        view = h.chapter_view(services, "yuye", 2)
        assert view.text == "第二章在别处改过。" and view.versions and not any(r[1] for r in view.versions)
        assert h.chapter_view(services, "yuye", 1).text == "第一章写好了。"
        assert h.save_text(services, "yuye", 1, "第一章写好了。") is None  # a blur: no change, no wait
        assert h.outline_rows(services, "yuye")[1][4] == len("第二章在别处改过。")
        release.set()
        thread.join(90)
        assert not thread.is_alive() and done and not isinstance(done[0], BaseException), done
        assert h.open_novel(services, "yuye").text(3)
    finally:
        release.set()
        services.close()


# ----------------------------------------------------------------------------- item 9: damaged novels
@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-16"])
def test_an_outside_edit_in_another_encoding_becomes_a_utf8_version(lib: Novels, encoding: str) -> None:
    novel = lib.create("yuye", title="雨夜剑")
    novel.set_text(1, "原稿。")
    edited = "夜色如墨，林远撑伞走过长街，雨水顺着伞骨滴落在青石板上。\n" * 4
    novel.chapter_file(1).write_bytes(edited.encode(encoding))
    assert novel.text(1) == edited
    got = novel.read(1)
    assert got.outside_edit and got.encoding != "utf-8" and not got.problem
    version = novel.sync(1)
    assert version is not None and version.kind == "outside-edit" and version.text == edited
    assert "UTF-8" in version.note
    on_disk = novel._version_file(1, version.id).read_bytes().decode("utf-8")  # the version is UTF-8
    assert json.loads(on_disk)["text"] == edited
    assert novel.read(1).version == version.id and not novel.read(1).outside_edit


def test_set_replaces_an_undecodable_chapter_and_keeps_its_bytes(lib: Novels, tmp_path: Path, capsys) -> None:
    novel = lib.create("yuye", title="雨夜剑")
    novel.set_text(1, "原稿。")
    garbage = bytes(range(0x80, 0x100)) * 40 + b"\x81\x00\xff"
    novel.chapter_file(1).write_bytes(garbage)
    with pytest.raises(WritingError, match="无法解码") as err:
        novel.text(1)
    assert "chapter set" in str(err.value)
    assert novel.read(1).problem

    code, out, err = cli(tmp_path, capsys, "chapter", "show", "--novel", "yuye", "1")
    assert code == 0 and "无法解码" in err and "chapter set" in err and out  # the best-effort text
    fixed = tmp_path / "fixed.txt"
    fixed.write_text("修好的正文。", "utf-8")
    code, _, err = cli(tmp_path, capsys, "chapter", "set", "--novel", "yuye", "1", "--file", str(fixed))
    assert code == 0, err
    assert novel.text(1) == "修好的正文。"
    kinds = [(v.kind, v.id) for v in novel.versions(1)]
    assert [k for k, _ in kinds] == ["set", "outside-edit", "set"]
    raw = novel._version_file(1, kinds[1][1]).with_suffix(".raw")
    assert raw.read_bytes() == garbage  # nothing the outside editor saved is lost


def test_one_damaged_novel_never_hides_the_others(lib: Novels, tmp_path: Path, capsys) -> None:
    good = lib.create("good", title="好书")
    good.set_text(1, "好好的一章。")
    gbk = lib.create("gbk", title="外部编辑")
    gbk.set_text(1, "原稿。")
    gbk.chapter_file(1).write_bytes("用记事本另存为 GBK 的一章，雨夜里的长街。".encode("gbk"))
    broken = lib.create("broken", title="坏大纲")
    (broken.root / "outline.json").write_text('{"volumes": [{"title": "卷", "chapters": 5}]}', "utf-8")
    garbled = lib.create("garbled", title="乱码")
    garbled.set_text(1, "原稿。")
    garbled.chapter_file(1).write_bytes(bytes(range(0x80, 0x100)) * 40)
    card = lib.create("card", title="坏卡片")
    (card.root / "novel.json").write_text("{not json", "utf-8")

    code, out, err = cli(tmp_path, capsys, "novel", "list", "--json")
    assert code == 0, err
    rows = {r["slug"]: r for r in json.loads(out)}
    assert sorted(rows) == ["broken", "card", "garbled", "gbk", "good"]
    assert not rows["good"]["problems"] and not rows["gbk"]["problems"]
    assert rows["gbk"]["written"] == 1 and rows["gbk"]["total_chars"] > 10
    assert all(rows[s]["problems"] for s in ("broken", "card", "garbled"))
    assert "outline.json" in rows["broken"]["problems"][0] and "novel.json" in rows["card"]["problems"][0]

    code, out, err = cli(tmp_path, capsys, "novel", "list")
    assert code == 0 and "⚠" in out and "garbled" in err

    from xiaoshuo.webui.pages.book import handlers as h

    services = _services(tmp_path)
    try:
        listed = h.novel_choices(services)
        choices = {slug: label for label, slug in listed}
        assert sorted(choices) == ["broken", "card", "garbled", "gbk", "good"]
        assert [slug for _, slug in listed][-2:] == ["broken", "card"]  # a page load opens a healthy one
        assert "⚠" in choices["broken"] and "⚠" in choices["card"] and "⚠" not in choices["good"]
        view = h.chapter_view(services, "garbled", 1)  # opens, says why, offers the fix
        assert "⚠" in view.header and view.text
        assert h.save_text(services, "garbled", 1, "在页面上修好的正文。")
        assert h.open_novel(services, "garbled").text(1) == "在页面上修好的正文。"
    finally:
        services.close()

    broken.import_outline({"volumes": [{"title": "卷一", "chapters": [{"title": "一"}]}]})  # repaired
    assert [c.title for c in broken.outline().chapters()] == ["一"]
    assert list(broken.root.glob("outline.damaged-*.json"))  # the damaged plan is kept beside it


# ----------------------------------------------------------------------------- item 10 and 14
def test_chapters_numbered_10000_and_above_are_found(lib: Novels, tmp_path: Path, capsys) -> None:
    novel = lib.create("long", title="长篇")
    novel.import_outline({"volumes": [{"title": "正文", "chapters": [{"title": "章"}] * 10002}]})
    for number in (1, 9999):  # written elsewhere (an outside edit), 0001.txt and 9999.txt
        novel.chapter_file(number).parent.mkdir(exist_ok=True)
        novel.chapter_file(number).write_text(f"第{number}章的正文。", "utf-8")
    for number in (10000, 10002):
        novel.set_text(number, f"第{number}章的正文。")
    assert novel.written_chapters() == [1, 9999, 10000, 10002]
    assert novel.chapter_file(10000).name == "10000.txt"
    (novel.root / "chapters" / "0001.txt.bak").write_text("备份", "utf-8")  # not a chapter file
    assert novel.written_chapters() == [1, 9999, 10000, 10002]
    assert novel.read(10002).version == 1
    [row] = lib.summaries()
    assert row.written == 4 and row.chapters == 10002
    code, out, err = cli(tmp_path, capsys, "chapter", "show", "--novel", "long", "10002")
    assert code == 0 and out.strip() == "第10002章的正文。", err


def test_versions_of_a_missing_chapter_is_an_error(lib: Novels, tmp_path: Path, capsys) -> None:
    lib.create("yuye", title="雨夜剑").set_text(1, "第一章。")
    code, out, err = cli(tmp_path, capsys, "chapter", "versions", "--novel", "yuye", "7")
    assert code == 2 and "第 7 章" in err and not out
    code, _, show_err = cli(tmp_path, capsys, "chapter", "show", "--novel", "yuye", "7")
    assert code == 2 and err == show_err  # the same error as chapter show
    code, out, err = cli(tmp_path, capsys, "chapter", "versions", "--novel", "yuye", "1")
    assert code == 0 and out.startswith("* v1")


# ----------------------------------------------------------------------------- helpers
def _services(tmp_path: Path, engine=None):
    from xiaoshuo.webui.services import Services

    settings = load(
        None,
        overrides={
            "paths.data_dir": str(tmp_path / "data"),
            "paths.checkpoints_dir": str(tmp_path / "checkpoints"),
            "memory.embedding_model": "none",
            "writing.segment_chars": 200,
        },
        env={},
    )
    return Services(settings, engine=EngineHolderStub(engine))


def test_a_damaged_card_or_outline_is_one_line_with_a_fix(lib: Novels) -> None:
    """pydantic's multi-line text ("For further information visit …") was the whole message, with no fix."""
    novel = lib.create("dmg", title="损坏")
    (novel.root / "outline.json").write_text('{"volumes": [{"title": 1}]}', "utf-8")
    with pytest.raises(WritingError) as err:
        novel.outline()
    assert "\n" not in err.value.message and "volumes[0].title" in err.value.message
    assert "outline import" in (err.value.fix or "")
    (novel.root / "novel.json").write_text('{"slug": "dmg", "title": 5, "chapter_chars": 1}', "utf-8")
    with pytest.raises(WritingError) as err:
        novel.card()
    assert "\n" not in err.value.message and "(+1 more)" in err.value.message and err.value.fix
