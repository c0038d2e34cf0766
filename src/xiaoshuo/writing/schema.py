"""The data of a book: novel card, outline (卷 → 章), chapter versions — validated pydantic models.

Validation errors name the path inside the document (``volumes[0].chapters[3].title``), the value
and the expected form, so a hand-written outline file can be fixed from the message alone.  This
module holds no files and does no I/O; :mod:`xiaoshuo.writing.project` stores these models.
"""

from __future__ import annotations

import re
import time
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xiaoshuo.errors import XiaoshuoError

STATUSES = ("planned", "drafted", "final")
SOURCES = ("generated", "edited", "imported")
_SLUG_BAD = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
#: Unicode categories a slug may not contain: control (Cc), format (Cf: zero-width spaces and joiners,
#: bidirectional embeddings/overrides/isolates U+202A–U+202E and U+2066–U+2069, the BOM U+FEFF, soft
#: hyphen …), surrogates (Cs: bytes that were not UTF-8) and line/paragraph separators (Zl, Zp).
#: They are invisible or reorder what is shown, so two different slugs could look the same.
_SLUG_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
SLUG_MAX_CHARS = 64
#: A slug is a file name (``novels/<slug>``) and the start of longer ones: the import staging folder
#: ``.importing/<slug>-<pid>-<8 hex>`` (+17 bytes), the replaced book's backup
#: ``.replaced/<slug>-<YYYYmmdd-HHMMSS>-<pid>`` (+24), the default export ``exports/<slug>-s2hk.epub``
#: and its temp name ``.<slug>-s2hk.epub.tmp-<pid>-<6 hex>`` (+30).  A file name holds at most 255 bytes
#: (NAME_MAX); 200 leaves 55 for the longest derived name, and fits 64 Chinese characters (192 bytes).
SLUG_MAX_BYTES = 200


class WritingError(XiaoshuoError):
    """A novel, outline, chapter or version is missing, malformed or locked."""


def check_slug(slug: str) -> str:
    """A novel's folder name and memory key (see :data:`SLUG_MAX_BYTES`); returns it stripped.

    Checked before anything is created: 1–64 characters and at most 200 bytes of UTF-8, valid UTF-8
    (a name read from a non-UTF-8 terminal arrives with surrogate escapes), no path separators, no
    control, invisible or bidirectional characters, in Unicode NFC form, not starting with ".".
    """
    s = (slug or "").strip()
    problem = _slug_problem(s)
    if problem:
        raise WritingError(
            f"小说标识无效 (invalid novel slug): {problem}",
            expected=f"1–{SLUG_MAX_CHARS} characters and at most {SLUG_MAX_BYTES} bytes of UTF-8, "
            'no / \\ : * ? " < > |, no control, invisible (zero-width) or bidirectional characters, NFC, '
            'not starting with "." (e.g. yuye-jian or 雨夜剑)',
            received=(slug or "").encode("utf-8", "backslashreplace").decode("utf-8"),
            fix="换一个标识，例如书名拼音或书名本身",
        )
    return s


def _slug_problem(s: str) -> str:
    """What is wrong with a stripped slug, in words; empty when nothing is."""
    try:
        size = len(s.encode("utf-8"))
    except UnicodeEncodeError:
        return "不是合法的 UTF-8 (not valid UTF-8)"
    if not s:
        return "为空 (empty)"
    if len(s) > SLUG_MAX_CHARS:
        return f"{len(s)} 个字符，超过 {SLUG_MAX_CHARS} (too many characters)"
    if size > SLUG_MAX_BYTES:
        return f"UTF-8 共 {size} 字节，超过 {SLUG_MAX_BYTES} (too many bytes: 汉字 3 字节，emoji 4 字节)"
    if s.startswith("."):
        return '以 "." 开头 (starts with ".")'
    if (m := _SLUG_BAD.search(s)) is not None:
        return f"含有不允许的字符 (forbidden character) {m.group()!r}"
    for c in s:
        if unicodedata.category(c) in _SLUG_BAD_CATEGORIES:
            name = f"U+{ord(c):04X} {unicodedata.name(c, '')}".rstrip()
            return f"含有不可见或改变显示方向的字符 (invisible or bidirectional character) {name}"
    nfc = unicodedata.normalize("NFC", s)
    if nfc != s:  # é as e + ◌́, or a CJK compatibility ideograph: looks like another slug
        return f"不是 Unicode 规范形式 NFC，看起来与 {nfc!r} 相同 (not NFC: looks the same as {nfc!r})"
    return ""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: control characters a card field may not hold (newline and tab allowed in 简介/文风; no other C0/C1,
#: no DEL): they break EPUB/DOCX metadata (XML 1.0) and terminals (ESC sequences)
_CARD_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class NovelCard(_Model):
    """What every prompt says about the book."""

    slug: str
    title: str = Field(min_length=1, max_length=200)
    author: str = Field("", max_length=100)
    genre: str = Field("", max_length=100)  # 类型: 仙侠 / 都市 / 悬疑 …
    premise: str = Field("", max_length=5000)  # 简介
    style: str = Field("", max_length=2000)  # 文风
    pov: str = Field("", max_length=100)  # 视角: 第一人称 / 第三人称有限 …
    chapter_chars: int = Field(3000, ge=50, le=200_000)  # 每章目标字数
    adapter: str = ""  # default LoRA adapter (registry name, path or served name)
    variant: Literal["简", "繁"] = "简"
    created: float = Field(default_factory=time.time)

    @field_validator("title", "author", "genre", "premise", "style", "pov")
    @classmethod
    def _no_control(cls, value: str, info: Any) -> str:
        one_line = info.field_name in ("title", "author", "genre", "pov")
        if _CARD_CONTROL.search(value) or (one_line and ("\n" in value or "\t" in value)):
            raise ValueError("control characters are not allowed" + (" (one line)" if one_line else ""))
        return value

    def render(self) -> str:
        lines = [f"书名：《{self.title}》"]
        for label, value in (
            ("作者", self.author),
            ("类型", self.genre),
            ("视角", self.pov),
            ("文风", self.style),
            ("简介", self.premise),
        ):
            if value.strip():
                lines.append(f"{label}：{value.strip()}")
        if self.variant == "繁":
            lines.append("用字：繁体中文")
        return "\n".join(lines)


class ChapterPlan(_Model):
    """One chapter of the outline.  ``number`` runs from 1 across volumes."""

    number: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    synopsis: str = ""  # 要点
    characters: list[str] = Field(default_factory=list)
    places: list[str] = Field(default_factory=list)
    target_chars: int | None = Field(None, ge=50, le=200_000)
    status: Literal["planned", "drafted", "final"] = "planned"
    summary: str = ""  # 前情提要 of this chapter once written
    summary_who: list[str] = Field(default_factory=list)  # who / where / when of the summary
    summary_where: list[str] = Field(default_factory=list)
    summary_when: str = ""

    @field_validator("characters", "places", "summary_who", "summary_where")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]


class Volume(_Model):
    title: str = Field(min_length=1, max_length=200)
    chapters: list[ChapterPlan] = Field(default_factory=list)


class Outline(_Model):
    volumes: list[Volume] = Field(default_factory=list)

    def chapters(self) -> list[ChapterPlan]:
        return [c for v in self.volumes for c in v.chapters]

    def chapter(self, number: int) -> ChapterPlan | None:
        for c in self.chapters():
            if c.number == number:
                return c
        return None

    def volume_of(self, number: int) -> Volume | None:
        for v in self.volumes:
            if any(c.number == number for c in v.chapters):
                return v
        return None

    def renumber(self) -> None:
        n = 0
        for v in self.volumes:
            for c in v.chapters:
                n += 1
                c.number = n


class Version(_Model):
    """One state of a chapter's text, kept forever (candidates, edits, imports)."""

    id: int = Field(ge=1)
    chapter: int = Field(ge=1)
    time: float
    source: Literal["generated", "edited", "imported"]
    kind: str = ""  # chapter / continue / rewrite / expand / shorten / outside-edit / set / revert / migrated
    text: str
    chars: int
    sha256: str
    parent: int | None = None  # the version it was made from
    sampling: dict[str, Any] | None = None
    seed: int | None = None
    adapter: str | None = None
    memory: list[dict[str, Any]] = Field(default_factory=list)  # entries the prompt used
    summaries: list[int] = Field(default_factory=list)  # chapters whose summaries the prompt used
    report: dict[str, Any] = Field(default_factory=dict)  # length / repetition / segments
    note: str = ""
    #: a generated version's text as the model sent it, when writing.cleaning.clean_generated changed it
    #: (U+FFFD, control characters removed); None when the text is the model's own
    raw_output: str | None = None

    def brief(self) -> dict[str, Any]:
        d = self.model_dump(exclude={"text", "raw_output"})
        d["preview"] = self.text[:40]
        return d


def error_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def validation_error(where: str, exc: ValidationError) -> WritingError:
    first = exc.errors()[0]
    path = error_path(tuple(first.get("loc", ())))
    more = len(exc.errors()) - 1
    return WritingError(
        f"{where} 格式不对 (malformed): {path}: {first.get('msg')}" + (f" (+{more} more)" if more else ""),
        expected=_expected(path),
        received=first.get("input"),
        fix=f"修改 {path} 后重试",
    )


def _expected(path: str) -> str:
    leaf = path.rsplit(".", 1)[-1]
    return {
        "title": "a non-empty string (title)",
        "synopsis": "a string (要点)",
        "characters": "a list of names",
        "places": "a list of place names",
        "target_chars": "an integer number of 字 in [50, 200000]",
        "volumes": 'a list of {"title": …, "chapters": [...]}',
        "chapters": 'a list of {"title": …, "synopsis": …}',
        "status": "planned, drafted or final",
        "author": "one line of at most 100 characters, no control characters",
        "genre": "one line of at most 100 characters, no control characters",
        "pov": "one line of at most 100 characters, no control characters",
        "premise": "at most 5000 characters, no control characters but newlines",
        "style": "at most 2000 characters, no control characters but newlines",
        "chapter_chars": "an integer number of 字 in [50, 200000]",
    }.get(leaf, 'the outline form {"volumes": [{"title": …, "chapters": [{"title": …}]}]}')
