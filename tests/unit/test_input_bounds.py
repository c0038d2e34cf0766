"""Bad input stays bounded (issue 19, items 6 and 7): zip bombs, devices, FIFOs, huge files, deep JSON.

Every archive here is built in the test; the limits are set small through config so nothing big is written.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import xiaoshuo
from xiaoshuo import config
from xiaoshuo.config import LimitSettings
from xiaoshuo.data import prepare
from xiaoshuo.data.readers import ReadError, read_source
from xiaoshuo.data.sample import XIANXIA_SIMPLIFIED
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.files import MB, check_zip, parse_user_json, read_user_file, read_user_stream
from xiaoshuo.writing import Novels
from xiaoshuo.writing.importing import import_book

DEEP = "[" * 100_000  # RecursionError in json.loads
CJK = [chr(c) for c in range(0x4E00, 0x9FA5)]


def _epub(path: Path, bodies: list[str], extra: dict[str, bytes] | None = None) -> Path:
    """A valid EPUB (ebooklib) with one chapter per body, plus ``extra`` raw zip entries."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("bounds-test")
    book.set_title("边界")
    chapters = []
    for i, body in enumerate(bodies):
        ch = epub.EpubHtml(title=f"第{i + 1}章", file_name=f"c{i}.xhtml", lang="zh")
        ch.content = f"<html><body><h1>第{i + 1}章</h1>{body}</body></html>"
        book.add_item(ch)
        chapters.append(ch)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    if extra:
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
            for name, data in extra.items():
                zf.writestr(name, data)
    return path


def _random_text(n_bytes: int, seed: int = 1) -> str:
    """Chinese text that does not compress much (ratio ~1.5): n_bytes of UTF-8."""
    return "".join(random.Random(seed).choices(CJK, k=n_bytes // 3))


def _settings(tmp_path: Path, **limits):
    overrides = {f"limits.{k}": v for k, v in limits.items()}
    overrides["paths.data_dir"] = str(tmp_path / "data")
    return config.load(env={}, cwd=tmp_path, overrides=overrides)


# ------------------------------------------------------------------------------------------ zip bombs
def test_a_zip_bomb_epub_is_refused_by_novel_import_before_ebooklib_reads_it(tmp_path: Path, monkeypatch):
    # 8 MB of one repeated paragraph deflates to ~30 KB: the ratio (~300) is above the default 100.
    para = "<p>林远撑伞站在城门外，雨落无声。</p>"
    bomb = _epub(tmp_path / "bomb.epub", [para * (8 * MB // len(para.encode()))])
    assert bomb.stat().st_size < 100_000
    from ebooklib import epub

    def opened(*args, **kwargs):
        raise AssertionError("ebooklib opened a zip bomb")

    monkeypatch.setattr(epub, "read_epub", opened)  # refused before anything is decompressed
    lib = Novels(tmp_path / "novels")
    with pytest.raises(XiaoshuoError) as exc:
        import_book(lib, bomb, "bomb")  # defaults; the WebUI's 导入小说 runs this same function
    assert "limits.max_zip_ratio" in str(exc.value) and "zip bomb" in str(exc.value)
    assert "解决 fix" in str(exc.value) and not (lib.root / "bomb").exists()
    with pytest.raises(ReadError, match="max_zip_ratio"):
        read_source(bomb, "bomb.epub")  # prepare's reader


def test_zip_limits_from_config_entry_total_and_count(tmp_path: Path):
    settings = _settings(tmp_path, max_zip_entry_mb=1, max_zip_total_mb=2, max_zip_entries=20)
    lib = Novels(tmp_path / "novels")
    # under the limits: a normal small book imports
    ok = _epub(tmp_path / "ok.epub", [f"<p>{_random_text(30_000, i)}</p>" for i in range(3)])
    assert len(import_book(lib, ok, "ok", settings=settings)["chapters"]) == 3

    cases = {
        "max_zip_entry_mb": _epub(tmp_path / "entry.epub", [f"<p>{_random_text(int(1.5 * MB))}</p>"]),
        "max_zip_total_mb": _epub(
            tmp_path / "total.epub", [f"<p>{_random_text(int(0.8 * MB), i)}</p>" for i in range(3)]
        ),
        "max_zip_entries": _epub(
            tmp_path / "count.epub", ["<p>正文</p>"], {f"img/{i}.png": b"x" for i in range(30)}
        ),
    }
    for key, path in cases.items():
        with pytest.raises(XiaoshuoError) as exc:
            import_book(lib, path, "bad", settings=settings)
        assert f"limits.{key}" in str(exc.value) and "解决 fix" in str(exc.value), key
        assert not (lib.root / "bad").exists()


def test_an_entry_holding_more_than_its_header_says_is_refused(tmp_path: Path):
    path = tmp_path / "lying.zip"
    data = b"a" * (3 * MB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.xhtml", data)
    raw = bytearray(path.read_bytes())
    # the central directory entry: signature, then uncompressed size at offset 24 — claim 1 KB
    cd = raw.rindex(b"PK\x01\x02")
    assert int.from_bytes(raw[cd + 24 : cd + 28], "little") == len(data)
    raw[cd + 24 : cd + 28] = (1024).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    limits = LimitSettings(max_zip_ratio=10_000)  # the declared sizes alone pass
    with pytest.raises(XiaoshuoError) as exc:
        check_zip(path, limits, what="lying.zip")
    assert "damaged zip" in str(exc.value) or "holds more" in str(exc.value)


def test_prepare_refuses_a_zip_bomb_and_a_fifo_and_keeps_the_good_file(tmp_path: Path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    _epub(raw / "bomb.epub", ["<p>啊</p>" * (4 * MB // 12)])
    os.mkfifo(raw / "pipe.txt")
    (raw / "good.txt").write_text(XIANXIA_SIMPLIFIED, "utf-8")
    settings = config.load(
        env={},
        cwd=tmp_path,
        overrides={
            "paths.data_dir": str(tmp_path / "data"),
            "paths.models_dir": str(tmp_path / "models"),  # builtin-tiny is made there, never in the checkout
            "data.tokenizer": "builtin-tiny",
        },
    )
    unblocked = []

    def unblock() -> None:  # the old code hangs opening the FIFO: give it EOF so the test fails, not hangs
        unblocked.append(True)
        os.close(os.open(raw / "pipe.txt", os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(60, unblock)
    timer.start()
    try:
        manifest = prepare(settings)
    finally:
        timer.cancel()
    assert not unblocked, "prepare blocked on a FIFO"
    by_path = {s["path"]: s for s in manifest["sources"]}
    assert by_path["good.txt"]["status"] == "ok"
    assert by_path["bomb.epub"]["status"] == "error" and "max_zip_ratio" in by_path["bomb.epub"]["error"]
    assert by_path["pipe.txt"]["status"] == "error" and "not a regular file" in by_path["pipe.txt"]["error"]


# ------------------------------------------------------------------------------- text files a user names
def test_read_user_file_refuses_devices_fifos_folders_and_large_files(tmp_path: Path):
    bound = {"limit": 1000, "key": "limits.max_file_mb", "what": "正文文件 (text file)"}
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a blocking open would hang
    for path, kind in (("/dev/zero", "character device"), (fifo, "FIFO"), (tmp_path, "folder")):
        with pytest.raises(XiaoshuoError, match=f"not a regular file: .*{kind}"):
            read_user_file(path, **bound)
    with pytest.raises(XiaoshuoError, match="file not found"):
        read_user_file(tmp_path / "missing.txt", **bound)
    exact = tmp_path / "exact.txt"
    exact.write_bytes(b"x" * 1000)
    assert read_user_file(exact, **bound) == b"x" * 1000
    exact.write_bytes(b"x" * 1001)
    with pytest.raises(XiaoshuoError, match=r"file too large.*limits\.max_file_mb"):
        read_user_file(exact, **bound)
    link = tmp_path / "zero-link"
    link.symlink_to("/dev/zero")
    with pytest.raises(XiaoshuoError, match="not a regular file"):
        read_user_file(link, **bound)

    class Endless:  # stdin that never ends
        def read(self, n: int) -> bytes:
            return b"\0" * n

    with pytest.raises(XiaoshuoError, match="file too large"):
        read_user_stream(Endless(), **bound)  # type: ignore[arg-type]


def test_chapter_set_file_dev_zero_is_refused_in_bounded_memory(tmp_path: Path):
    """The issue's repro, as a real process under a 1.5 GB address-space limit (the old code ran out)."""
    Novels(tmp_path / "data" / "novels").create("yuye", title="雨夜").import_outline(
        {"volumes": [{"title": "一", "chapters": [{"title": "夜雨"}]}]}
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}
    env["PYTHONPATH"] = str(Path(xiaoshuo.__file__).parents[1])

    def bounded() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 * MB, 1536 * MB))

    res = subprocess.run(
        [sys.executable, "-m", "xiaoshuo", "chapter", "set", "1", "--novel", "yuye", "--file", "/dev/zero"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=bounded,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "not a regular file" in res.stderr and "Traceback" not in res.stderr


def test_chapter_set_caps_the_text_from_a_file_and_from_stdin(tmp_path: Path, clean_env):
    from xiaoshuo.cli import app

    clean_env.chdir(tmp_path)
    clean_env.setenv("XIAOSHUO_LIMITS__MAX_CHAPTER_FILE_MB", "1")
    Novels(tmp_path / "data" / "novels").create("yuye", title="雨夜").import_outline(
        {"volumes": [{"title": "一", "chapters": [{"title": "夜雨"}]}]}
    )
    big = tmp_path / "big.txt"
    big.write_text("雨" * (MB // 3 + 10), "utf-8")
    runner = CliRunner()
    for args, stdin in ((["--file", str(big)], None), (["--file", "-"], big.read_bytes())):
        res = runner.invoke(app, ["chapter", "set", "1", "--novel", "yuye", *args], input=stdin)
        assert res.exit_code != 0 and isinstance(res.exception, XiaoshuoError), res.output
        assert "file too large" in str(res.exception) and "limits.max_chapter_file_mb" in str(res.exception)
    small = tmp_path / "small.txt"
    small.write_bytes("夜雨。\r\n林远走了。\r\n".encode())
    res = runner.invoke(app, ["chapter", "set", "1", "--novel", "yuye", "--file", str(small)])
    assert res.exit_code == 0, res.output
    assert Novels(tmp_path / "data" / "novels").get("yuye").text(1) == "夜雨。\n林远走了。\n"


def test_chapter_set_refuses_nul_bytes_from_a_file_and_from_stdin(tmp_path: Path, clean_env):
    """``head -c 1000000 /dev/zero | chapter set --file -`` stored a chapter of 1,000,000 NUL "字"."""
    from xiaoshuo.cli import app

    clean_env.chdir(tmp_path)
    lib = Novels(tmp_path / "data" / "novels")
    outline = {"volumes": [{"title": "一", "chapters": [{"title": "夜雨"}]}]}
    lib.create("yuye", title="雨夜").import_outline(outline)
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"\0" * 1000)
    runner = CliRunner()
    for args, stdin in ((["--file", str(nul)], None), (["--file", "-"], b"\xe9\x9b\xa8\0\0")):
        res = runner.invoke(app, ["chapter", "set", "1", "--novel", "yuye", *args], input=stdin)
        assert res.exit_code != 0 and isinstance(res.exception, XiaoshuoError), res.output
        assert "NUL" in str(res.exception)
    assert lib.get("yuye").text(1) == "" and lib.get("yuye").versions(1) == []


# ------------------------------------------------------------------------------------------ deep JSON
def test_deeply_nested_json_is_a_clear_error_in_outline_and_memory_import(tmp_path: Path, clean_env):
    from xiaoshuo.cli import app
    from xiaoshuo.memory import StoryMemoryError
    from xiaoshuo.webui.pages.memory import handlers as memory_page
    from xiaoshuo.writing import WritingError

    clean_env.chdir(tmp_path)
    Novels(tmp_path / "data" / "novels").create("yuye", title="雨夜")
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP, "utf-8")
    runner = CliRunner()
    for args, error in (
        (["outline", "import", str(deep), "--novel", "yuye"], WritingError),
        (["memory", "import", str(deep)], StoryMemoryError),
    ):
        res = runner.invoke(app, args)
        assert isinstance(res.exception, error), repr(res.exception)
        assert "nested too deeply" in str(res.exception) and "解决 fix" in str(res.exception)
    # nested under the recursion limit but still absurd: refused as well, not stored
    medium = tmp_path / "medium.json"
    medium.write_text('{"volumes": ' + "[" * 500 + "]" * 500 + "}", "utf-8")
    res = runner.invoke(app, ["outline", "import", str(medium), "--novel", "yuye"])
    assert isinstance(res.exception, WritingError) and "nested too deeply" in str(res.exception)
    # the WebUI's 记忆 import: the page's own message, the detail kept
    services = SimpleNamespace(settings=config.load(env={}, cwd=tmp_path))
    with pytest.raises(StoryMemoryError, match="more than 64 levels"):
        memory_page.import_file(services, "yuye", str(deep))


def test_prepare_readers_turn_deep_json_into_errors_and_warnings(tmp_path: Path):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP, "utf-8")
    with pytest.raises(ReadError, match="nested too deeply"):
        read_source(deep, "deep.json")
    lines = tmp_path / "mixed.jsonl"
    good = json.dumps({"title": "雨夜", "content": "林远撑伞站在城门外。"}, ensure_ascii=False)
    lines.write_text(f"{good}\n{DEEP}\n", "utf-8")
    result = read_source(lines, "mixed.jsonl")
    assert len(result.documents) == 1 and "more than 64 levels" in " ".join(result.warnings)


def test_parse_user_json_keeps_ordinary_json_and_names_bad_json():
    assert parse_user_json('{"a": [[1, {"b": 2}]]}', what="x") == {"a": [[1, {"b": 2}]]}
    assert parse_user_json("[" * 64 + "]" * 64, what="x") is not None
    with pytest.raises(XiaoshuoError, match="nested too deeply"):
        parse_user_json("[" * 65 + "]" * 65, what="x")
    with pytest.raises(XiaoshuoError, match=r"not valid JSON.*x\.json: Expecting"):
        parse_user_json("{not json", what="x", source="x.json")
