"""Durable file writes, and bounded reads of the files a user names.

Writes: write to a temp name in the same folder, fsync, rename — the one way xiaoshuo writes a file that
must never be seen half-written (manifests, run records, stories, exports, the sample corpus).  Streams
that are appended to (event logs) are not for here.

Reads of user input (``chapter set --file``, ``novel import``, ``outline``/``memory import``, prepare's
sources): :func:`read_user_file` reads only a regular file up to a size limit (never a device, FIFO or
folder); :func:`check_zip` refuses a zip bomb before a library (ebooklib, python-docx) opens the archive;
:func:`parse_user_json` turns bad or absurdly nested JSON into a clear error.  The limits come from the
``limits.*`` settings; this module does not read settings itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from xiaoshuo.errors import XiaoshuoError

MB = 1024 * 1024
MAX_JSON_DEPTH = 64  # user JSON (outlines, memory exports, corpora) nests 3-5 levels
RATIO_FLOOR = MB  # the compression ratio is checked only for entries larger than this
_CHUNK = MB


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in ``path`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    return atomic_write(path, json.dumps(data, ensure_ascii=False, indent=2, default=str))


# ----------------------------------------------------------------------------------- user input, bounded
def read_user_file(
    path: str | os.PathLike[str],
    *,
    limit: int,
    key: str,
    what: str,
    error: type[XiaoshuoError] = XiaoshuoError,
) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` bytes, or ``error`` saying why not.

    Devices (``/dev/zero``), FIFOs, sockets and folders are refused without reading (the file is opened
    non-blocking, so a FIFO cannot hang the open); a file over the limit is refused from its size, and one
    that grows past it while being read is refused at the limit.  ``key`` names the setting that holds
    the limit (shown in the fix); ``what`` names the file in messages, e.g. ``"正文文件 (text file)"``.
    """
    with _open_regular(path, what=what, error=error) as (fh, size):
        if size > limit:
            raise _too_large(path, size, limit, key, what, error)
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _too_large(path, len(data), limit, key, what, error)
    return data


def read_user_stream(
    fh: IO[bytes], *, limit: int, key: str, what: str, error: type[XiaoshuoError] = XiaoshuoError
) -> bytes:
    """At most ``limit`` bytes of a stream (stdin); ``error`` when it holds more."""
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise _too_large("-", len(data), limit, key, what, error, more=True)
    return data


def parse_user_json(
    text: str | bytes,
    *,
    what: str,
    error: type[XiaoshuoError] = XiaoshuoError,
    expected: str | None = None,
    fix: str | None = None,
    source: object = None,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """``json.loads`` for text a user gave: invalid JSON and JSON nested deeper than ``max_depth`` become
    ``error`` (``received``: the detail, after ``source`` — the file — when given) instead of a
    ``JSONDecodeError`` or ``RecursionError``."""
    where = f"{source}: " if source is not None else ""
    try:
        data = json.loads(text)
    except RecursionError:
        data = _TOO_DEEP
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8/16/32
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}" if hasattr(exc, "lineno") else str(exc)
        raise error(
            f"{what} 不是合法的 JSON，可能被截断 (not valid JSON, or truncated)",
            expected=expected,
            received=where + detail,
            fix=fix or "修复该处语法，或重新导出文件",
        ) from None
    if data is _TOO_DEEP or _nested_deeper(data, max_depth):
        raise error(
            f"{what} 的 JSON 嵌套太深 (JSON nested too deeply)",
            expected=f"at most {max_depth} levels" + (f": {expected}" if expected else ""),
            received=f"{where}more than {max_depth} levels of [ ] / {{ }}",
            fix="文件可能已损坏或被篡改；改用正常导出的文件",
        )
    return data


_TOO_DEEP = object()


def _nested_deeper(data: Any, max_depth: int) -> bool:
    stack = [(data, 1)]
    while stack:
        obj, depth = stack.pop()
        children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else None
        if children is None:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def check_zip(
    path: str | os.PathLike[str], limits: Any, *, what: str, error: type[XiaoshuoError] = XiaoshuoError
) -> None:
    """Refuse a zip archive (EPUB, DOCX …) that would decompress past the ``limits.max_zip_*`` bounds.

    Checked before anything is decompressed: the archive's own size, the entry count (from the end
    record, before the central directory is loaded), each entry's declared size, the declared total and
    each large entry's compression ratio.  Then every entry is decompressed in chunks (nothing is kept)
    and counted, so an entry holding more than its header says is refused at the limit, as is a damaged
    one (CRC).  Call it before handing the path to a library that opens the archive itself.
    """
    with _open_regular(path, what=what, error=error) as (fh, size):
        total_limit = limits.max_zip_total_mb * MB
        if size > total_limit:
            raise _too_large(path, size, total_limit, "limits.max_zip_total_mb", what, error)
        record = zipfile._EndRecData(fh) if hasattr(zipfile, "_EndRecData") else None
        if record is not None and record[4] > limits.max_zip_entries:  # [4]: _ECD_ENTRIES_TOTAL
            raise _refused(path, what, error, "too_many", limits, f"{record[4]} entries")
        try:
            with zipfile.ZipFile(fh) as zf:
                infos = zf.infolist()
                if len(infos) > limits.max_zip_entries:
                    raise _refused(path, what, error, "too_many", limits, f"{len(infos)} entries")
                _check_declared(path, infos, limits, what, error)
                _check_actual(path, zf, infos, limits, what, error)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            NotImplementedError,
            RuntimeError,
            EOFError,
            ValueError,
        ) as exc:
            raise error(
                f"{what} 不是完好的压缩包 (damaged zip archive)",
                expected="a valid zip (EPUB / DOCX)",
                received=f"{path}: {type(exc).__name__}: {exc}",
                fix="用原来的软件重新导出该文件",
            ) from None


_ZIP_REFUSALS = {  # kind: (setting, unit, message)
    "too_many": ("max_zip_entries", "", "压缩包里的文件太多 (too many entries)"),
    "entry": ("max_zip_entry_mb", " MB", "压缩包里的文件解压后太大 (an entry is too large decompressed)"),
    "total": ("max_zip_total_mb", " MB", "压缩包解压后太大 (too large decompressed)"),
    "ratio": ("max_zip_ratio", "", "压缩比异常，疑似压缩炸弹 (compression ratio too high: a zip bomb?)"),
    "lying": (
        "max_zip_entry_mb",
        " MB",
        "压缩包的文件头与内容不符 (an entry holds more than its header says)",
    ),
}


def _check_declared(
    path: Any, infos: list[zipfile.ZipInfo], limits: Any, what: str, error: type[XiaoshuoError]
) -> None:
    total = 0
    for info in infos:
        if info.file_size > limits.max_zip_entry_mb * MB:
            raise _refused(path, what, error, "entry", limits, f"{info.filename}: {_mb(info.file_size)}")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and ratio > limits.max_zip_ratio:
            shown = f"{info.filename}: {_mb(info.compress_size)} → {_mb(info.file_size)}, ratio {ratio:.0f}"
            raise _refused(path, what, error, "ratio", limits, shown)
        total += info.file_size
        if total > limits.max_zip_total_mb * MB:
            raise _refused(
                path, what, error, "total", limits, f"more than {_mb(total)} in {len(infos)} entries"
            )


def _check_actual(
    path: Any,
    zf: zipfile.ZipFile,
    infos: list[zipfile.ZipInfo],
    limits: Any,
    what: str,
    error: type[XiaoshuoError],
) -> None:
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        allowed, size = min(limits.max_zip_entry_mb * MB, info.file_size), 0
        with zf.open(info) as entry:
            while chunk := entry.read(_CHUNK):
                size += len(chunk)
                total += len(chunk)
                if size > allowed:
                    shown = f"{info.filename}: declares {_mb(info.file_size)}, holds more"
                    raise _refused(path, what, error, "lying", limits, shown)
                if total > limits.max_zip_total_mb * MB:
                    raise _refused(path, what, error, "total", limits, f"more than {_mb(total)}")


def _refused(
    path: Any, what: str, error: type[XiaoshuoError], kind: str, limits: Any, received: str
) -> XiaoshuoError:
    name, unit, message = _ZIP_REFUSALS[kind]
    key = f"limits.{name}"
    return error(
        f"{what}: {message}",
        expected=f"{key} <= {getattr(limits, name)}{unit}",
        received=f"{path}: {received}",
        fix=f"确认文件来源可信；确实需要时调大 {key} (raise {key})",
    )


def _too_large(
    path: Any, size: int, limit: int, key: str, what: str, error: type[XiaoshuoError], *, more: bool = False
) -> XiaoshuoError:
    return error(
        f"{what} 太大 (file too large)",
        expected=f"at most {_mb(limit)} ({key})",
        received=f"{path}: {'more than ' if more else ''}{_mb(size)}",
        fix=f"拆分文件，或调大 {key} (raise {key})",
    )


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB" if size < 10 * MB else f"{size // MB} MB"


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO / pipe"),
    (stat.S_ISSOCK, "a socket"),
)


@contextlib.contextmanager
def _open_regular(
    path: str | os.PathLike[str], *, what: str, error: type[XiaoshuoError]
) -> Iterator[tuple[IO[bytes], int]]:
    """``(file, size)`` of a regular file, opened without blocking (a FIFO cannot hang the open); anything
    else, and any OS error while the block runs, becomes ``error``."""
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    )
    cannot = f"无法读取 {what} (cannot read)"
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(
            f"无法读取 {what}：文件不存在 (cannot read: file not found)", received=str(path), fix="检查路径"
        ) from None
    except IsADirectoryError:
        raise _not_regular(path, "a folder", what, error) from None
    except OSError as exc:
        raise error(cannot, received=f"{path}: {exc}", fix="检查文件权限") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise _not_regular(path, kind, what, error)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        fh = open(fd, "rb")  # noqa: SIM115 - closed by the with below
    except BaseException:
        os.close(fd)
        raise
    with fh:
        try:
            yield fh, os.fstat(fd).st_size
        except OSError as exc:
            raise error(cannot, received=f"{path}: {exc}", fix="检查文件权限") from None


def _not_regular(path: Any, kind: str, what: str, error: type[XiaoshuoError]) -> XiaoshuoError:
    return error(
        f"{what} 不是普通文件 (not a regular file: {kind})",
        expected="a regular file",
        received=str(path),
        fix="指定一个普通文件（不是文件夹、设备或管道）；管道的内容请先保存成文件",
    )
