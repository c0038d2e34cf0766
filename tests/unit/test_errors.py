"""Every operating-system failure reaches the user as one line (expected / received / fix) and exit 2.

The disk-full cases run on a real, small tmpfs where the test may mount one (root, as in CI); elsewhere
they run the CLI in a subprocess under a file-size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored, so a write
fails with EFBIG instead of killing the process).  Either way the novel must be exactly as before.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoshuo.cli import main
from xiaoshuo.errors import XiaoshuoError, from_os_error, translate

OUTLINE = '{"volumes": [{"title": "卷一", "chapters": [{"title": "开端"}, {"title": "承接"}]}]}'


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "磁盘已满"),
        (errno.EROFS, "只读"),
        (errno.EACCES, "没有权限"),
        (errno.ENAMETOOLONG, "名字太长"),
        (errno.EISDIR, "文件夹"),
        (errno.ENOTDIR, "不是文件夹"),
        (errno.EFBIG, "大小"),
        (errno.ECONNREFUSED, "连接被拒绝"),
    ],
)
def test_os_errors_are_worded_by_errno(code: int, words: str) -> None:
    exc = OSError(code, os.strerror(code), "/数据/novels/雨夜/novel.json")
    err = from_os_error(exc)
    text = str(err)
    assert isinstance(err, XiaoshuoError)
    assert words in err.message and "/数据/novels/雨夜/novel.json" in err.message
    assert errno.errorcode[code] in text and "期望 expected" in text and "解决 fix" in text
    assert "\n" not in text


def test_unknown_errno_unresolvable_host_and_bugs() -> None:
    odd = from_os_error(OSError(errno.EOWNERDEAD, "Owner died"))
    assert "EOWNERDEAD" in str(odd) and "Owner died" in str(odd)
    dns = from_os_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert "主机名" in dns.message
    assert translate(ValueError("a bug")) is None  # a bug keeps its traceback
    surrogate = translate(UnicodeEncodeError("utf-8", "a\udcffb", 1, 2, "surrogates not allowed"))
    assert surrogate is not None and "UTF-8" in surrogate.message and "xff" in str(surrogate)


def _one_line(err: str) -> str:
    """The one error line: no traceback, exactly one ``错误`` line, and it is the last thing printed."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("错误 error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


def _book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outline.json").write_text(OUTLINE, "utf-8")
    (tmp_path / "c1.txt").write_text("第一版正文。", "utf-8")
    assert main(["novel", "new", "yuye", "--title", "雨夜"]) == 0
    assert main(["outline", "import", "outline.json", "--novel", "yuye"]) == 0
    assert main(["chapter", "set", "1", "--novel", "yuye", "--file", "c1.txt"]) == 0
    capsys.readouterr()


def test_cli_os_errors_are_one_line(tmp_path: Path, clean_env, capsys) -> None:
    _book(tmp_path, clean_env, capsys)
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["novel", "export", "yuye", "--output", str(folder)]) == 2  # was IsADirectoryError
    assert "目录" in _one_line(capsys.readouterr().err)  # export's own target check names the folder
    assert main(["novel", "export", "yuye", "--output", ""]) == 2  # was ValueError
    assert "--output" in _one_line(capsys.readouterr().err)
    long_name = "书" * 90 + ".txt"  # 274 bytes: longer than a file name may be
    assert main(["novel", "export", "yuye", "--output", long_name]) == 2  # was OSError 36
    assert "名字太长" in _one_line(capsys.readouterr().err)
    assert main(["novel", "new", "\udcff\udcfe", "--title", "x"]) == 2  # was UnicodeEncodeError
    assert "UTF-8" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in (tmp_path / "data" / "novels").iterdir()) == ["yuye"]  # no folder left
    with pytest.raises(OSError):  # --debug keeps the traceback
        main(["--debug", "novel", "export", "yuye", "--output", long_name])


def test_data_dir_that_is_a_file_is_an_error(tmp_path: Path, clean_env, capsys) -> None:
    clean_env.chdir(tmp_path)
    (tmp_path / "afile").write_text("x", "utf-8")
    assert main(["--set", "paths.data_dir=afile", "novel", "list"]) == 2  # was: "no novels"
    line = _one_line(capsys.readouterr().err)
    assert "paths.data_dir" in line and "afile" in line
    assert main(["--set", "paths.data_dir=afile/sub", "novel", "new", "a", "--title", "A"]) == 2
    assert "paths.data_dir" in _one_line(capsys.readouterr().err)  # was NotADirectoryError


def test_malformed_chroma_url_is_one_line(tmp_path: Path, clean_env, capsys) -> None:
    clean_env.chdir(tmp_path)
    assert main(["--set", "memory.chroma_url=http://host:abc", "memory", "list"]) == 2  # was ValueError
    assert "memory.chroma_url" in _one_line(capsys.readouterr().err)


# --------------------------------------------------------------------------------------------- disk full
def _mount(*args: str) -> bool:
    try:
        return subprocess.run(["mount", *args], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` at ``path`` when this process may mount one; yields whether it did."""
    path.mkdir()
    mounted = os.geteuid() == 0 and _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def _fill(disk: Path, keep: int) -> None:
    """Write a filler file until fewer than ``keep`` bytes are free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with (disk / "filler").open("ab") as fh:
        fh.write(b"\0" * max(0, free - keep))


def _state(root: Path) -> dict[str, object]:
    novels = root / "data" / "novels"
    files = sorted(
        str(p.relative_to(novels)) for p in novels.rglob("*") if p.is_file() and ".lock" not in p.name
    )
    return {
        "files": files,
        "text": (novels / "yuye" / "chapters" / "0001.txt").read_text("utf-8"),
        "outline": (novels / "yuye" / "outline.json").read_text("utf-8"),
    }


def test_disk_full_is_one_line_and_the_book_is_unchanged(tmp_path: Path, clean_env, capsys) -> None:
    big = tmp_path / "big.txt"
    big.write_text("长夜漫漫。" * 200_000, "utf-8")  # 3 MB
    book = tmp_path / "book.txt"
    book.write_text("".join(f"第{i}章 标题\n" + "正文。" * 10_000 + "\n" for i in range(1, 6)), "utf-8")
    with _tmpfs(tmp_path / "disk", "2m") as mounted:
        if not mounted:
            _disk_full_by_file_size_limit(tmp_path / "disk", big, book)
            return
        disk = tmp_path / "disk"
        _book(disk, clean_env, capsys)
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()  # a fresh Chroma, as in a new process (see below)
        mem = ["--set", "memory.embedding_model=none"]
        assert main([*mem, "memory", "add", "--novel", "yuye", "--kind", "character", "--name", "李逍遥",
                     "--text", "剑客"]) == 0  # fmt: skip
        capsys.readouterr()
        before = _state(disk)
        _fill(disk, keep=64 * 1024)
        plot = ["--kind", "plot", "--name", "事件", "--text", "长" * 3900]
        for args, words in (
            (["chapter", "set", "1", "--novel", "yuye", "--file", str(big)], "磁盘已满"),
            (["novel", "import", str(book), "--slug", "yuye", "--replace"], "磁盘已满"),
            (["novel", "import", str(book), "--slug", "other"], "磁盘已满"),
        ):
            assert main(args) == 2, args
            assert words in _one_line(capsys.readouterr().err), args
        _fill(disk, keep=0)
        for args, words in (
            (["novel", "new", "third", "--title", "第三"], "磁盘已满"),
            # the saved BM25 index's version token is written first (磁盘已满); Chroma may not say "disk full"
            ([*mem, "memory", "add", "--novel", "yuye", *plot], "磁盘已满|记忆库"),
        ):
            assert main(args) == 2, args
            line = _one_line(capsys.readouterr().err)
            assert any(w in line for w in words.split("|")), (args, line)
        assert _state(disk) == before  # nothing half-written, nothing pointing at a lost version
        (disk / "filler").unlink()
        # what the next command (a new process) sees: Chroma caches one system per path in-process, and
        # the one that hit the full disk stays broken (seen when another test opened Chroma first)
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        assert main([*mem, "memory", "list", "--novel", "yuye", "--json"]) == 0
        assert "李逍遥" in capsys.readouterr().out
        assert main(["chapter", "show", "1", "--novel", "yuye"]) == 0
        assert "第一版正文" in capsys.readouterr().out


def test_read_only_folder_is_one_line(tmp_path: Path, clean_env, capsys) -> None:
    with _tmpfs(tmp_path / "disk", "1m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root); the errno wording is tested above")
        disk = tmp_path / "disk"
        _book(disk, clean_env, capsys)
        before = _state(disk)
        assert _mount("-o", "remount,ro", str(disk))
        for args in (
            ["chapter", "set", "1", "--novel", "yuye", "--file", str(disk / "outline.json")],
            ["novel", "export", "yuye"],
            ["novel", "new", "other", "--title", "另一本"],
        ):
            assert main(args) == 2, args  # was OSError 30
            assert "只读" in _one_line(capsys.readouterr().err), args
        assert _state(disk) == before


def _disk_full_by_file_size_limit(root: Path, big: Path, book: Path) -> None:
    """Fallback without mount: the CLI in a subprocess whose files may not exceed a few KB."""
    import xiaoshuo
    from xiaoshuo.testing import run_cli

    env = {"PYTHONPATH": str(Path(xiaoshuo.__file__).resolve().parents[1])}  # this checkout's code
    for args in (
        ["novel", "new", "yuye", "--title", "雨夜"],
        ["outline", "import", str(root.parent / "outline.json"), "--novel", "yuye"],
    ):
        (root.parent / "outline.json").write_text(OUTLINE, "utf-8")
        assert run_cli(*args, cwd=root, env=env).returncode == 0
    before = _state_or_files(root)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    for args in (
        ["chapter", "set", "1", "--novel", "yuye", "--file", str(big)],
        ["novel", "import", str(book), "--slug", "yuye", "--replace"],
    ):
        out = subprocess.run(
            [sys.executable, "-m", "xiaoshuo", *args],
            cwd=root,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}, **env},
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=limit,
        )
        assert out.returncode == 2, out.stderr
        assert "文件超过" in _one_line(out.stderr)
    assert _state_or_files(root) == before


def _state_or_files(root: Path) -> list[str]:
    novels = root / "data" / "novels"
    files = [p for p in novels.rglob("*") if p.is_file() and ".lock" not in p.name]
    return sorted(f"{p.relative_to(novels)}:{p.stat().st_size}" for p in files)


def test_webui_guard_words_os_errors_like_the_cli() -> None:
    import gradio as gr

    from xiaoshuo.webui.errors import guard

    def full_disk(path: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    def bug() -> None:
        raise ValueError("a bug")

    with pytest.raises(gr.Error) as err:
        guard(full_disk)("/data/novels/yuye/chapters/0001.txt")
    assert "磁盘已满" in err.value.message and "0001.txt" in err.value.message
    assert "解决 fix" in err.value.message
    with pytest.raises(ValueError):  # a bug is not dressed up as an expected error
        guard(bug)()
