"""WebUI download folders and file names (``webui.files``) and the login limiter (``webui.security``),
without a server: the real app over HTTP is tests/integration/test_webui_auth.py."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from xiaoshuo.webui.files import DOWNLOAD_MAX_AGE, MAX_NAME_BYTES, clean_downloads, download_path, fit_name
from xiaoshuo.webui.pages.book import handlers as h
from xiaoshuo.webui.security import LoginLimiter, client_key
from xiaoshuo.webui.services import save_uploads
from xiaoshuo.writing import Novels


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temp directory, here a folder of this test's own."""
    root = tmp_path / "systemp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.mark.parametrize(
    ("name", "expect"),
    [
        ("雨夜.txt", "雨夜.txt"),
        ("雨" * 100 + ".docx", "雨" * 48 + ".docx"),  # 48 × 3 + 5 = 149 bytes
        ("🌧" * 70 + ".txt", "🌧" * 36 + ".txt"),  # 36 × 4 + 4 = 148
        ("a" * 200, "a" * MAX_NAME_BYTES),
        ("👨‍👩‍👧" * 30 + ".md", None),  # ZWJ sequences: never ends on a joiner
        ("x" * 10 + "." + "长" * 60, None),  # an "extension" of 180 bytes is part of the name
        ("", "file"),
    ],
)
def test_fit_name_counts_utf8_bytes_keeps_the_extension_and_whole_characters(name, expect) -> None:
    got = fit_name(name)
    if expect is not None:
        assert got == expect
    assert len(got.encode("utf-8")) <= MAX_NAME_BYTES
    assert got.encode("utf-8").decode("utf-8") == got and not got.endswith(("\u200d", "\ufe0f", " "))
    if name.endswith(".md"):
        assert got.endswith("👧.md")


def test_export_of_a_book_titled_with_100_hanzi_gets_a_short_download_name(services, temp_dir) -> None:
    novel = Novels.from_settings(services.settings).create("longtitle", title="雨" * 100)
    novel.set_text(1, "夜雨敲窗。")
    path = Path(h.export_file(services, "longtitle", "docx"))  # OSError 36 (name too long) before
    assert path.name == "雨" * 48 + ".docx" and path.stat().st_size > 0
    assert path.parent.parent == temp_dir and path.parent.name.startswith("xiaoshuo-book-")
    txt = Path(h.export_file(services, "longtitle", "txt"))
    assert "夜雨敲窗" in txt.read_text("utf-8") and txt.parent != path.parent  # a fresh folder each time


def test_old_downloads_are_removed_at_the_next_export_and_at_app_start(services, temp_dir) -> None:
    novel = Novels.from_settings(services.settings).create("yuye", title="雨夜")
    novel.set_text(1, "夜雨敲窗。")
    old = temp_dir / "xiaoshuo-book-old_1234"
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "雨夜.txt").write_text("x", "utf-8")
    old_memory = temp_dir / "xiaoshuo-export-0ld12345"
    old_memory.mkdir()
    fresh = temp_dir / "xiaoshuo-book-fresh123"  # a download someone may still be fetching
    fresh.mkdir()
    not_ours = temp_dir / "other-app-old"
    not_ours.mkdir()
    shots = temp_dir / "xiaoshuo-book-shots-abcd1234"  # the browser tests' screenshots, kept on purpose
    shots.mkdir()
    link = temp_dir / "xiaoshuo-book-link1234"
    link.symlink_to(not_ours)
    hours_ago = time.time() - DOWNLOAD_MAX_AGE - 7200
    for p in (old, old_memory, not_ours, shots):
        os.utime(p, (hours_ago, hours_ago))
    os.utime(link, (hours_ago, hours_ago), follow_symlinks=False)

    current = Path(h.export_file(services, "yuye", "txt"))
    assert not old.exists() and not old_memory.exists()
    assert fresh.is_dir() and not_ours.is_dir() and shots.is_dir() and link.is_symlink() and current.is_file()
    # at app start (launch calls it) and later: the current download goes once it is old
    assert clean_downloads() == 0 and current.is_file()
    assert clean_downloads(now=time.time() + DOWNLOAD_MAX_AGE + 60) == 2  # current's folder and fresh
    assert not current.exists() and not fresh.exists() and link.is_symlink()


def test_download_path_makes_unsafe_titles_plain_file_names(temp_dir) -> None:
    p = download_path('../a/b:c*"d"<>|', "md")
    assert p.parent.parent == temp_dir and p.name == "_a_b_c__d____.md"
    assert download_path("   ", "txt", fallback="yuye").name == "yuye.txt"


class _Upload(str):
    """A path as a file component hands it over, with the name the user's file had."""

    orig_name = ""


def test_a_training_upload_named_with_70_emoji_is_stored_under_a_shorter_name(tmp_path) -> None:
    src = tmp_path / "upload.bin"
    src.write_text("第一章 雨\n夜雨敲窗。\n", "utf-8")
    upload = _Upload(str(src))
    upload.orig_name = "🌧" * 70 + ".txt"  # 284 bytes: OSError 36 when stored under it
    raw = tmp_path / "raw"
    (message,) = save_uploads([upload], raw)
    (stored,) = raw.iterdir()
    assert stored.name == "🌧" * 36 + ".txt" and stored.read_text("utf-8").startswith("第一章")
    assert message.startswith("✓") and stored.name in message


def test_login_limiter_locks_after_5_failures_and_doubles_the_lock() -> None:
    now = [1000.0]
    limiter = LoginLimiter(clock=lambda: now[0])
    assert [limiter.attempt("1.2.3.4") for _ in range(5)] == [0.0] * 5
    assert limiter.attempt("1.2.3.4") == pytest.approx(30)  # the 6th try within 30 s
    assert limiter.attempt("5.6.7.8") == 0.0  # per client
    now[0] += 30
    assert limiter.attempt("1.2.3.4") == 0.0  # one more try ...
    assert limiter.attempt("1.2.3.4") == pytest.approx(60)  # ... then twice as long
    for _ in range(10):
        now[0] += limiter.attempt("1.2.3.4")
        limiter.attempt("1.2.3.4")
    assert limiter.attempt("1.2.3.4") == pytest.approx(900)  # capped at 15 minutes
    limiter.succeeded("1.2.3.4")
    assert limiter.attempt("1.2.3.4") == 0.0  # a good login forgets the failures


def test_login_limiter_forgets_after_an_hour_and_stays_bounded() -> None:
    now = [0.0]
    limiter = LoginLimiter(clock=lambda: now[0], max_clients=100)
    for _ in range(4):
        limiter.attempt("a")
    now[0] += 3601
    assert [limiter.attempt("a") for _ in range(5)] == [0.0] * 5 and limiter.attempt("a") > 0
    for i in range(300):
        limiter.attempt(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._clients) <= 101 and limiter.attempt("a") > 0  # a locked client is kept


def test_client_key_groups_an_ipv6_64_and_unwraps_mapped_ipv4() -> None:
    assert client_key({"client": ("2001:db8::1", 1)}) == client_key({"client": ("2001:db8::ffff", 2)})
    assert client_key({"client": ("2001:db8:0:1::1", 1)}) != client_key({"client": ("2001:db8::1", 1)})
    assert client_key({"client": ("::ffff:1.2.3.4", 1)}) == "1.2.3.4"
    assert client_key({"client": ("1.2.3.4", 9)}) == "1.2.3.4"
    assert client_key({}) == "unknown"
