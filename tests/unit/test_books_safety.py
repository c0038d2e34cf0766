"""Books never lose a book: appends killed with SIGKILL roll back, leftovers of killed runs are cleaned,
and ``novel export`` never replaces what it should not (issue 19 items 1, 3 and 4)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xiaoshuo.writing import Novels
from xiaoshuo.writing.importing import STAGING, import_book
from xiaoshuo.writing.project import Novel

SRC = str(Path(__file__).resolve().parents[2] / "src")

# The child appends a book and stops (sleeps) once chapters are on disk, before the outline commit:
# the test then kills it with a real SIGKILL.
APPEND_AND_HANG = """
import sys, time
from pathlib import Path
from xiaoshuo.writing import Novels
from xiaoshuo.writing.project import Novel
from xiaoshuo.writing.importing import import_book

def progress(stage, done, total):
    if stage.startswith("写入") and done > 0:
        print("on disk", flush=True)
        time.sleep(120)

import_book(Novels(Path(sys.argv[1])), sys.argv[2], "yuye", mode="append", progress=progress)
print("finished", flush=True)
"""


def book(n: int, first: int = 1, word: str = "雨") -> str:
    return "".join(f"第{k}章 第{k}回\n{word * 30}，林远走过第{k}座桥。\n" for k in range(first, first + n))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


@pytest.fixture
def lib(tmp_path: Path) -> Novels:
    return Novels(tmp_path / "novels")


def test_append_killed_with_sigkill_rolls_back_and_a_retry_works(lib: Novels, tmp_path: Path):
    first = tmp_path / "a.txt"
    first.write_text(book(3), "utf-8")
    import_book(lib, first, "yuye")
    more = tmp_path / "b.txt"
    more.write_text(book(60, first=4, word="风"), "utf-8")
    env = {**os.environ, "PYTHONPATH": SRC}
    child = subprocess.Popen(
        [sys.executable, "-c", APPEND_AND_HANG, str(lib.root), str(more)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = child.stdout.readline()  # blocks until the child prints (or dies: then "")
        assert line.strip() == "on disk", child.stderr.read()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    root = lib.root / "yuye"
    assert (root / "chapters" / "0004.txt").is_file()  # killed mid-append: chapters beyond the outline
    owner = json.loads((root / ".lock.owner.json").read_text("utf-8"))
    assert owner["pid"] == child.pid  # the dead process's lock owner record is still there

    novel = lib.get("yuye")
    assert len(novel.outline().chapters()) == 3  # readers see the book as it was
    rep = import_book(lib, more, "yuye", mode="append")  # the retry: the next lock holder rolls back first
    assert [c["number"] for c in rep["chapters"]] == list(range(4, 64))
    assert len(novel.outline().chapters()) == 63
    assert novel.written_chapters() == list(range(1, 64))
    assert all(len(novel.versions(n)) == 1 for n in range(1, 64))
    assert novel.text(63).startswith("风")
    assert not (root / ".lock.owner.json").exists()  # cleaned: no stale owner names a dead pid
    assert not (root / novel.BULK_JOURNAL).exists()


def test_an_unfinished_append_is_rolled_back_by_the_next_writer(lib: Novels, tmp_path: Path, monkeypatch):
    src = tmp_path / "a.txt"
    src.write_text(book(2), "utf-8")
    import_book(lib, src, "yuye")
    novel = lib.get("yuye")
    before = {p.relative_to(novel.root) for p in novel.root.rglob("*")}

    def crash(*a, **k):  # the state a kill leaves: chapters written, the outline not yet saved
        raise SystemExit("killed")

    monkeypatch.setattr(type(novel), "recover_bulk_import", lambda self: [])  # as if no cleanup ran
    monkeypatch.setattr(type(novel), "save_outline", crash)
    with pytest.raises(SystemExit):
        novel.bulk_import([("正文", [("第3章", "新的一章。", 5), ("第4章", "又一章。", 4)])], note="t")
    monkeypatch.undo()
    assert (novel.root / "chapters" / "0004.txt").is_file()
    novel.set_text(1, "改过的第一章。")  # any write takes the lock and finishes the rollback first
    after = {p.relative_to(novel.root) for p in novel.root.rglob("*")}
    assert after - before == {Path("versions/0001/000002.json")}
    assert novel.written_chapters() == [1, 2]
    # a committed import is kept: only its journal goes
    novel.bulk_import([("正文", [("第3章", "新的一章。", 5)])], note="t")
    (novel.root / novel.BULK_JOURNAL).write_text(
        json.dumps({"first": 3, "last": 3, "outline_sha256": "older"}), "utf-8"
    )
    novel.set_text(1, "再改。")
    assert novel.written_chapters() == [1, 2, 3] and not (novel.root / novel.BULK_JOURNAL).exists()


def test_staging_folders_of_killed_imports_are_removed_on_the_next_import(lib: Novels, tmp_path: Path):
    stale = lib.root / STAGING / f"old-book-{dead_pid()}-0123abcd"
    (stale / "chapters").mkdir(parents=True)
    (stale / "chapters" / "0001.txt").write_text("半个导入", "utf-8")
    live = lib.root / STAGING / f"busy-{os.getpid()}-89abcdef"  # an import still running here
    live.mkdir(parents=True)
    src = tmp_path / "a.txt"
    src.write_text(book(2), "utf-8")
    import_book(lib, src, "yuye")
    assert not stale.exists()
    assert live.is_dir()
    assert [c.slug for c in lib.list()] == ["yuye"]


# ---------------------------------------------------------------------- export targets (item 1)
@pytest.fixture
def project(lib: Novels, tmp_path: Path):
    """A novel under ``tmp/data/novels`` and settings whose data, models and checkpoints are in tmp."""
    from types import SimpleNamespace

    lib = Novels(tmp_path / "data" / "novels")
    src = tmp_path / "a.txt"
    src.write_text(book(3), "utf-8")
    import_book(lib, src, "yuye")
    import_book(lib, src, "other")
    paths = SimpleNamespace(
        data_dir=tmp_path / "data", models_dir=tmp_path / "models", checkpoints_dir=tmp_path / "ckpt"
    )
    return lib.get("yuye"), SimpleNamespace(paths=paths)


def test_export_refuses_an_existing_file_unless_overwrite(project, tmp_path: Path):
    from xiaoshuo.writing.exporting import export_book
    from xiaoshuo.writing.importing import BookError

    novel, settings = project
    out = tmp_path / "mine.docx"
    out.write_bytes(b"my own document")
    with pytest.raises(BookError, match=r"exists.*--overwrite") as err:
        export_book(novel, "txt", out, settings=settings)
    assert str(out) in str(err.value)
    assert out.read_bytes() == b"my own document"
    export_book(novel, "txt", out, settings=settings, overwrite=True)
    assert out.read_text("utf-8").startswith("《")
    new = tmp_path / "sub" / "new.txt"
    assert export_book(novel, "txt", new, settings=settings)["path"] == str(new)


def test_export_never_writes_links_folders_fifos_or_inside_the_project(project, tmp_path: Path):
    from xiaoshuo.writing.exporting import export_book
    from xiaoshuo.writing.importing import BookError

    novel, settings = project
    kept = tmp_path / "kept.txt"
    kept.write_text("别人的文件", "utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(kept)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    for target, why in ((link, "symbolic link"), (fifo, "not a regular"), (folder, "not a regular")):
        with pytest.raises(BookError, match=why) as err:
            export_book(novel, "txt", target, settings=settings, overwrite=True)
        assert str(target) in str(err.value)
    assert link.is_symlink() and kept.read_text("utf-8") == "别人的文件"
    assert fifo.is_fifo() and folder.is_dir() and not any(folder.iterdir())
    for bad in ("", "."):
        with pytest.raises(BookError, match="not a file name"):
            export_book(novel, "txt", bad, settings=settings)

    outline = tmp_path / "data" / "novels" / "other" / "outline.json"
    before = outline.read_bytes()
    (tmp_path / "via").symlink_to(tmp_path / "data")  # a folder link is resolved before comparing
    for target, setting in (
        (outline, "paths.data_dir"),
        (tmp_path / "via" / "novels" / "other" / "outline.json", "paths.data_dir"),
        (tmp_path / "data" / "x" / ".." / "novels" / "new.txt", "paths.data_dir"),
        (tmp_path / "models" / "book.txt", "paths.models_dir"),
        (tmp_path / "ckpt" / "run" / "book.txt", "paths.checkpoints_dir"),
    ):
        with pytest.raises(BookError, match=setting.replace(".", r"\.")):
            export_book(novel, "txt", target, settings=settings, overwrite=True)
    with pytest.raises(BookError, match="novels folder"):  # without settings the novels stay protected
        export_book(novel, "txt", outline, overwrite=True)
    assert outline.read_bytes() == before
    assert not (tmp_path / "models").exists() and not (tmp_path / "ckpt").exists()
    ok = export_book(novel, "txt", tmp_path / "data" / "exports" / "yuye.txt", settings=settings)
    assert Path(ok["path"]).is_file()  # data/exports is export's own folder


def test_export_folder_made_a_link_into_the_project_is_no_exemption(project, tmp_path: Path):
    """``data/exports`` linked to another novel's folder (or the models folder) must not open it up:
    the exemption is for export's own folder, not for wherever a link there points."""
    from xiaoshuo.writing.exporting import export_book
    from xiaoshuo.writing.importing import BookError

    novel, settings = project
    outline = tmp_path / "data" / "novels" / "other" / "outline.json"
    before = outline.read_bytes()
    exports = tmp_path / "data" / "exports"
    for where, refused in ((outline.parent, "novels folder|paths.data_dir"), (tmp_path / "models", "models")):
        where.mkdir(exist_ok=True)
        if exports.is_symlink():
            exports.unlink()
        exports.symlink_to(where)
        with pytest.raises(BookError, match=refused):
            export_book(novel, "txt", exports / "outline.json", settings=settings, overwrite=True)
        with pytest.raises(BookError, match=refused):
            export_book(novel, "md", exports / "yuye.md", settings=settings)
    assert outline.read_bytes() == before
    assert not list(outline.parent.glob("*.md")) and not list(outline.parent.glob(".*.tmp-*"))
    assert not any((tmp_path / "models").iterdir())
    exports.unlink()
    (tmp_path / "elsewhere").mkdir()
    exports.symlink_to(tmp_path / "elsewhere")  # a link out of the project is an ordinary folder
    assert Path(export_book(novel, "md", exports / "yuye.md", settings=settings)["path"]).is_file()


def test_cli_export_refuses_an_existing_output_and_overwrite_replaces_it(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from xiaoshuo.cli import app

    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    src = tmp_path / "a.txt"
    src.write_text(book(2), "utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["novel", "import", str(src), "--slug", "yuye"]).exit_code == 0
    out = tmp_path / "book.txt"
    out.write_text("不要覆盖我", "utf-8")
    res = runner.invoke(app, ["novel", "export", "yuye", "--output", str(out)])
    assert res.exit_code != 0 and "--overwrite" in str(res.exception)
    assert out.read_text("utf-8") == "不要覆盖我"
    res = runner.invoke(app, ["novel", "export", "yuye", "--output", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert "林远" in out.read_text("utf-8")
    outline = tmp_path / "data" / "novels" / "yuye" / "outline.json"
    res = runner.invoke(app, ["novel", "export", "yuye", "--output", str(outline), "--overwrite"])
    assert res.exit_code != 0 and "paths.data_dir" in str(res.exception)
    for _ in range(2):  # the default target, data/exports/<slug>.txt, is replaced by the next export
        assert runner.invoke(app, ["novel", "export", "yuye"]).exit_code == 0
    assert (tmp_path / "data" / "exports" / "yuye.txt").is_file()


def test_a_killed_exports_temp_file_is_removed_by_the_next_export(project, tmp_path: Path):
    from xiaoshuo.writing.exporting import export_book

    novel, settings = project
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".book.docx.tmp-{dead_pid()}-a1b2c3"
    stale.write_bytes(b"PK half a file")
    running = out / f".book.docx.tmp-{os.getpid()}-d4e5f6"  # an export still running in this process
    running.write_bytes(b"PK")
    other = out / ".notes.tmp-1-zzz"  # not our pattern
    other.write_text("x", "utf-8")
    export_book(novel, "txt", out / "book.txt", settings=settings)
    assert sorted(p.name for p in out.iterdir()) == sorted(["book.txt", running.name, other.name])


# ---------------------------------------------------------------------- doctor --fix (item 4)
def test_doctor_finds_and_fix_cleans_the_leftovers_of_killed_runs(tmp_path: Path, monkeypatch):
    from types import SimpleNamespace

    from xiaoshuo.doctor import find_leftovers, fix_leftovers

    data = tmp_path / "data"
    lib = Novels(data / "novels")
    src = tmp_path / "a.txt"
    src.write_text(book(2), "utf-8")
    import_book(lib, src, "yuye")
    import_book(lib, src, "other")
    novel = lib.get("yuye")
    gone = dead_pid()

    # a killed append: chapters 3-4 on disk, the outline not saved, its journal naming a dead process
    def killed(self, outline):
        raise SystemExit("killed before the commit")

    monkeypatch.setattr(Novel, "recover_bulk_import", lambda self: [])
    monkeypatch.setattr(Novel, "save_outline", killed)
    with pytest.raises(SystemExit):
        novel.bulk_import([("正文", [("三", "第三章。", 4), ("四", "第四章。", 4)])], note="t")
    monkeypatch.undo()
    journal = novel.root / novel.BULK_JOURNAL
    journal.write_text(json.dumps(json.loads(journal.read_text("utf-8")) | {"pid": gone}), "utf-8")
    owner = lib.root / "other" / ".lock.owner.json"
    owner.write_text(json.dumps({"pid": gone, "what": "chapter write"}), "utf-8")
    staging = lib.root / STAGING / f"big-{gone}-0123abcd"
    staging.mkdir(parents=True)
    write_tmp = novel.root / "chapters" / f".0001.txt.tmp-{gone}-140001234"
    write_tmp.write_text("半", "utf-8")
    export_tmp = data / "exports" / f".yuye.epub.tmp-{gone}-abc123"
    export_tmp.parent.mkdir(parents=True)
    export_tmp.write_bytes(b"PK")
    settings = SimpleNamespace(paths=SimpleNamespace(data_dir=data))

    found = find_leftovers(settings)
    assert sorted(r["what"] for r in found) == sorted(
        ["unfinished append", "stale lock owner", "import staging folder", "temp file", "export temp file"]
    )
    assert (novel.root / "chapters" / "0003.txt").is_file()  # finding changes nothing
    fixed = fix_leftovers(settings)
    assert {r["what"]: r["done"] for r in fixed}["unfinished append"] == "rolled back"
    assert all(r["done"] in ("removed", "rolled back") for r in fixed)
    assert novel.written_chapters() == [1, 2] and not journal.exists()
    for path in (owner, staging, write_tmp, export_tmp, lib.root / STAGING):
        assert not path.exists(), path
    assert find_leftovers(settings) == []
    assert [c.slug for c in lib.list()] == ["other", "yuye"]


def test_webui_export_still_writes_its_own_download_file(tmp_path: Path):
    from xiaoshuo.config import load
    from xiaoshuo.webui.pages.book import handlers as h
    from xiaoshuo.webui.services import Services

    class NoEngine:  # import and export never touch the engine
        def close(self) -> None:
            pass

    settings = load(
        None,
        overrides={"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none"},
        env={},
    )
    services = Services(settings, engine=NoEngine())
    src = tmp_path / "a.txt"
    src.write_text(book(2), "utf-8")
    _, slug = h.import_file(services, str(src), "yuye")
    made = []
    try:
        for _ in range(2):  # the same book twice: two downloads
            made.append(Path(h.export_file(services, slug, "epub")))
        assert all(p.is_file() for p in made) and made[0] != made[1]
        assert not made[0].is_relative_to(tmp_path / "data")
    finally:
        for path in made:  # the WebUI's download folders are its own to clean; the test leaves none
            shutil.rmtree(path.parent, ignore_errors=True)


def test_export_to_a_long_file_name_uses_a_temp_name_that_fits(project, tmp_path: Path):
    from xiaoshuo.writing.exporting import export_book

    novel, settings = project
    target = tmp_path / ("书" * 80 + ".txt")  # 244 bytes: the temp name beside it must still fit in 255
    export_book(novel, "txt", target, settings=settings)
    assert target.is_file() and [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
