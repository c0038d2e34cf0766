"""Typed errors for xiaoshuo: what was expected, what was received, how to fix it.

Core code raises these; the edges (CLI, WebUI) turn them into one clear line.
:func:`from_os_error` is the one translation of an operating-system failure (disk full, read-only
folder, name too long …) into such a line; :func:`translate` applies it, and the same words to the
memory database's "disk is full" and to arguments that are not UTF-8, for the edges.
This module formats messages only; it does not print, log or exit.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3


class XiaoshuoError(Exception):
    """Base error. ``str(err)`` is one line a novelist can act on.

    Parameters
    ----------
    message:
        What went wrong, in one short sentence (Chinese first, key names verbatim).
    expected:
        What the program wanted (a form, a range, a file type …).
    received:
        What it actually got (the value, the path …).
    fix:
        What the user should do next.
    """

    def __init__(
        self,
        message: str,
        *,
        expected: str | None = None,
        received: object | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.expected = expected
        self.received = received
        self.fix = fix
        super().__init__(self.format())

    def format(self) -> str:
        parts = [self.message.rstrip("。. ")]
        if self.expected is not None:
            parts.append(f"期望 expected: {self.expected}")
        if self.received is not None:
            parts.append(f"收到 received: {_short(self.received)}")
        if self.fix is not None:
            parts.append(f"解决 fix: {self.fix}")
        return "；".join(parts)


class ConfigError(XiaoshuoError):
    """A configuration key, value or file is wrong."""


class DependencyError(XiaoshuoError):
    """An optional package (vllm, chromadb, …) is missing or unusable."""


class HardwareError(XiaoshuoError):
    """The hardware cannot do what was asked (no GPU, not enough memory …)."""


class OSFailure(XiaoshuoError):
    """An operating-system call failed (disk full, no permission, name too long …): :func:`from_os_error`."""

    def __init__(self, message: str, *, errno_: int | None = None, **kwargs: object) -> None:
        self.errno = errno_
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


_E = errno
#: errno → (what happened, what the program needed, what to do).  Chinese first, English in parentheses.
_OS_MESSAGES: dict[int, tuple[str, str, str]] = {
    _E.ENOSPC: (
        "磁盘已满 (no space left on device)",
        "free space on the disk that holds the path",
        "清理磁盘空间（df -h 查看）后重试；写入是原子的，未完成的写入不会改动已有内容 "
        "(free some space and retry; an unfinished write leaves what was there unchanged)",
    ),
    _E.EDQUOT: (
        "超出磁盘配额 (disk quota exceeded)",
        "room in your disk quota",
        "删除不需要的文件或请管理员提高配额后重试 (free space in your quota and retry)",
    ),
    _E.EFBIG: (
        "文件超过允许的大小 (file too large: size limit of the system or of ulimit -f)",
        "a file size the file system and `ulimit -f` allow",
        "检查 ulimit -f 与文件系统的单文件上限后重试 (raise the limit or write elsewhere)",
    ),
    _E.EROFS: (
        "文件系统是只读的 (read-only file system)",
        "a writable folder",
        "把 paths.* 或 --output 指向可写的位置，或以读写方式重新挂载 (point it at a writable place)",
    ),
    _E.EACCES: (
        "没有权限 (permission denied)",
        "a path this user may read and write",
        "检查该路径的所有者与权限（ls -l），或换一个可写的位置 (fix the permissions or use another place)",
    ),
    _E.EPERM: (
        "不允许的操作 (operation not permitted)",
        "a path this user may change",
        "检查该路径的所有者、权限与只读属性（lsattr），或换一个位置 (check owner and attributes)",
    ),
    _E.ENAMETOOLONG: (
        "名字太长 (file name too long)",
        "a file name of at most 255 bytes (one Chinese character is 3 bytes, an emoji 4) and a path "
        "of at most 4096 bytes",
        "用更短的名字或标识（slug / --output），或换一个更浅的目录 (use a shorter name)",
    ),
    _E.EISDIR: (
        "这是一个文件夹，不是文件 (is a directory)",
        "a file path",
        "给出文件的完整路径（含文件名），而不是文件夹 (name a file, not a folder)",
    ),
    _E.ENOTDIR: (
        "路径中有一段不是文件夹 (not a directory)",
        "every part of the path before the last to be a folder",
        "检查路径：其中某一段是普通文件（例如 paths.data_dir 指向了一个文件）(a part of the path is a file)",
    ),
    _E.ENOENT: (
        "找不到文件或文件夹 (no such file or directory)",
        "an existing path",
        "检查路径是否拼写正确、是否存在 (check the path)",
    ),
    _E.EEXIST: (
        "已经存在 (file exists)",
        "a path that does not exist yet",
        "换一个名字，或先移走已有的文件 (pick another name or move the existing one)",
    ),
    _E.ENOTEMPTY: (
        "文件夹不是空的 (directory not empty)",
        "an empty folder",
        "移走文件夹里的内容，或换一个位置 (empty it or use another place)",
    ),
    _E.EXDEV: (
        "不能跨磁盘移动 (cross-device link)",
        "source and target on the same file system",
        "把两个路径放在同一个磁盘/分区上 (keep both on one file system)",
    ),
    _E.ELOOP: (
        "符号链接循环 (too many levels of symbolic links)",
        "a path without a symlink loop",
        "检查路径中的符号链接（ls -l）(fix the symlink)",
    ),
    _E.EMFILE: (
        "打开的文件太多 (too many open files)",
        "fewer open files than `ulimit -n`",
        "提高 ulimit -n 后重试，或关闭其他占用文件的程序 (raise ulimit -n)",
    ),
    _E.ENFILE: (
        "系统打开的文件太多 (too many open files in system)",
        "a free file-table slot",
        "关闭其他程序后重试 (close other programs and retry)",
    ),
    _E.EIO: (
        "读写出错 (input/output error)",
        "a working disk",
        "检查磁盘（dmesg、smartctl）与连接；网络盘请确认仍然挂载 (check the disk)",
    ),
    _E.ENOMEM: (
        "内存不足 (out of memory)",
        "free memory",
        "关闭其他程序，或换更小的模型/批量后重试 (free memory and retry)",
    ),
    _E.EBUSY: (
        "设备或资源忙 (device or resource busy)",
        "a path no other program holds",
        "等其他程序释放后重试 (retry once the other program lets go)",
    ),
    _E.ETXTBSY: (
        "文件正被执行 (text file busy)",
        "a file no program is running",
        "停止正在运行它的程序后重试 (stop the program that runs it)",
    ),
    _E.ECONNREFUSED: (
        "连接被拒绝 (connection refused)",
        "a server listening at that address",
        "先启动该服务（xiaoshuo serve / chroma run），或修改地址配置 (start the server or fix the URL)",
    ),
    _E.ECONNRESET: (
        "连接被对方重置 (connection reset)",
        "a server that keeps the connection",
        "稍后重试；检查服务器日志 (retry; check the server's log)",
    ),
    _E.ETIMEDOUT: (
        "连接超时 (connection timed out)",
        "a reachable server",
        "检查网络与地址（防火墙、代理）后重试 (check the network and the address)",
    ),
    _E.EHOSTUNREACH: (
        "无法到达主机 (no route to host)",
        "a reachable host",
        "检查网络与地址 (check the network and the address)",
    ),
    _E.ENETUNREACH: (
        "网络不可达 (network unreachable)",
        "a working network",
        "检查网络连接；离线使用请先下载模型 (check the connection)",
    ),
    _E.EADDRINUSE: (
        "端口已被占用 (address already in use)",
        "a free port",
        "换一个端口（--port 或 webui.port），或停止占用它的程序 (pick another port)",
    ),
    _E.EPIPE: (
        "管道已断开 (broken pipe)",
        "a reader at the other end",
        "输出被提前关闭（例如 | head）；需要全部输出时不要截断 (the reader went away)",
    ),
}


def from_os_error(exc: OSError) -> XiaoshuoError:
    """One clear line for an ``OSError``: what failed (by errno), on which path(s), and what to do.

    Unknown errno values keep the system's own text; the caller decides whether to print or re-raise.
    """
    paths = [os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " → ".join(repr(p) for p in paths)
    detail = exc.strerror or str(exc) or type(exc).__name__
    received = f"{where}: {detail}" if where else detail
    if exc.errno is not None:
        received += f" [errno {exc.errno} {errno.errorcode.get(exc.errno, '?')}]"
    if isinstance(exc, socket.gaierror):  # its errno is an EAI_* code, not an errno
        return OSFailure(
            "无法解析主机名 (cannot resolve the host name)",
            expected="a host name the DNS knows (or an IP address)",
            received=str(exc),
            fix="检查 URL 中的主机名与网络/DNS 设置 (check the host in the URL and the network)",
        )
    if exc.errno in _OS_MESSAGES:
        message, expected, fix = _OS_MESSAGES[exc.errno]
    elif isinstance(exc, TimeoutError):
        message, expected, fix = _OS_MESSAGES[errno.ETIMEDOUT]
    else:
        message = f"系统调用失败 (operating-system error: {type(exc).__name__})"
        expected, fix = "the operation to succeed", "按提示检查该路径或设备后重试；加 --debug 查看详情"
    if paths:
        message = f"{message}: {_printable(paths[0])}"
    return OSFailure(message, errno_=exc.errno, expected=expected, received=received, fix=fix)


#: What SQLite (the memory store's ChromaDB) says for an operating-system failure, as an errno.
_DATABASE_FAILURES = (
    ("database or disk is full", errno.ENOSPC),
    ("disk is full", errno.ENOSPC),
    ("readonly database", errno.EROFS),
    ("read-only", errno.EROFS),
    ("disk i/o error", errno.EIO),
    ("unable to open database file", errno.EACCES),
)


def translate(exc: BaseException) -> XiaoshuoError | None:
    """The one line for an error that reached an edge (CLI, WebUI); ``None`` for a bug (keep its traceback).

    Typed errors stay as they are; ``OSError`` goes through :func:`from_os_error`; a database error of
    the memory store (SQLite / ChromaDB) that is really a full or read-only disk gets the same words; text
    that cannot be encoded as UTF-8 (an argument or file name in another encoding) says so.
    """
    if isinstance(exc, XiaoshuoError):
        return exc
    if isinstance(exc, OSError):
        return from_os_error(exc)
    if isinstance(exc, UnicodeEncodeError) and "surrogate" in (exc.reason or ""):
        bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else ""
        return XiaoshuoError(
            "参数或文件名不是合法的 UTF-8 (text that is not valid UTF-8)",
            expected="UTF-8 text in arguments, names and files",
            received=f"{bad.encode('utf-8', 'surrogateescape')!r} at {exc.start}",
            fix="把终端与文件名改用 UTF-8（locale 设为 zh_CN.UTF-8 或 C.UTF-8），或改用只含合法字符的名字",
        )
    if isinstance(exc, sqlite3.Error) or type(exc).__module__.split(".")[0] == "chromadb":
        text = str(exc)
        for pattern, code in _DATABASE_FAILURES:
            if pattern in text.lower():
                message, expected, fix = _OS_MESSAGES[code]
                return OSFailure(
                    f"{message}（记忆库数据库 / memory database）",
                    errno_=code,
                    expected=expected,
                    received=f"{type(exc).__name__}: {text}",
                    fix=fix,
                )
        # ChromaDB's storage engine often reports a full disk only as a failed write ("Error in
        # compaction …"): say what to check rather than print its traceback.
        return XiaoshuoError(
            "记忆库（ChromaDB）写入或读取失败 (the memory store failed)",
            expected="a memory store on a disk with free space that this user may write",
            received=f"{type(exc).__name__}: {text}",
            fix="检查磁盘空间（df -h）与 paths.data_dir 的权限后重试；仍然失败时加 --debug 查看详情 "
            "(check free space and permissions; --debug shows the details)",
        )
    return None


def _printable(text: str, limit: int = 120) -> str:
    """A path fit for one line: undecodable bytes escaped (they cannot be printed), long ones cut."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit // 2] + "…" + text[-(limit // 2) :]


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
