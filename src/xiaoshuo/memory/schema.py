"""Story-memory entries: 人物 characters, 情节 plot, 环境设定 settings, 重要对话 dialogues.

One validated model for all four kinds (the fields a kind does not use stay
empty); :meth:`MemoryEntry.document` is the text that retrieval indexes and
:meth:`MemoryEntry.render` the text a prompt gets.  This module validates and
formats; it does not store or search.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xiaoshuo.errors import XiaoshuoError

Kind = Literal["character", "plot", "setting", "dialogue"]
KINDS: tuple[str, ...] = ("character", "plot", "setting", "dialogue")
KIND_LABELS = {"character": "人物", "plot": "情节", "setting": "环境设定", "dialogue": "重要对话"}
DEFAULT_NOVEL = "default"
MAX_NAME = 100
MAX_TEXT = 4000


class StoryMemoryError(XiaoshuoError):
    """A memory entry or memory operation is invalid."""


class DenseUnavailableError(StoryMemoryError):
    """The dense part of retrieval cannot run now (model off by index, missing, loading); the rest can."""


class MemoryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    novel: str = Field(DEFAULT_NOVEL, min_length=1, max_length=MAX_NAME)
    kind: Kind
    name: str = Field("", max_length=MAX_NAME, description="character/setting name; plot/dialogue title")
    aliases: list[str] = Field(default_factory=list)
    text: str = Field("", max_length=MAX_TEXT, description="description, plot summary or the dialogue itself")
    traits: list[str] = Field(default_factory=list)
    relationships: dict[str, str] = Field(default_factory=dict)
    state: str = Field("", max_length=MAX_TEXT, description="a character's current state")
    chapter: int | None = Field(None, ge=0)
    chapter_end: int | None = Field(None, ge=0)
    time_in_story: str = Field("", max_length=MAX_NAME)
    characters: list[str] = Field(default_factory=list, description="plot: involved; dialogue: speakers")
    why: str = Field("", max_length=MAX_TEXT, description="dialogue: why it matters")
    thread: Literal["open", "closed", ""] = Field("", description="plot: an open or closed thread (伏笔)")
    payoff_chapter: int | None = Field(None, ge=0, description="plot thread: the chapter to pay it off")
    importance: int = Field(3, ge=1, le=5)
    pinned: bool = False
    archived: bool = False
    source: Literal["manual", "imported", "extracted"] = "manual"
    created: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)

    @field_validator("name", "text", "state", "why", "time_in_story", "novel")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("aliases", "traits", "characters")
    @classmethod
    def _clean_list(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            item = item.strip()
            if len(item) > MAX_NAME:
                raise ValueError(f"item longer than {MAX_NAME} characters: {item[:20]}…")
            if item and item not in out:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _kind_fields(self) -> MemoryEntry:
        if self.kind in ("character", "setting") and not self.name:
            raise ValueError(f"a {self.kind} needs a non-empty name")
        if not self.text:
            raise ValueError(f"a {self.kind} needs its main text (description / summary / dialogue)")
        if self.chapter is not None and self.chapter_end is not None and self.chapter_end < self.chapter:
            raise ValueError("chapter_end is before chapter")
        if self.kind != "plot" and (self.thread or self.payoff_chapter is not None):
            raise ValueError("only a plot entry can be a thread (伏笔) with a payoff chapter")
        return self

    # --------------------------------------------------------------- views
    @property
    def label(self) -> str:
        return self.name or self.text[:20]

    def triggers(self) -> list[str]:
        """Names that, appearing in the request or recent text, always bring this entry."""
        if self.kind not in ("character", "setting"):
            return []
        return [t for t in [self.name, *self.aliases] if t]

    def document(self) -> str:
        """What BM25 and the embedding index see."""
        parts = [
            self.name,
            " ".join(self.aliases),
            self.text,
            " ".join(self.traits),
            self.state,
            " ".join(f"{k}{v}" for k, v in self.relationships.items()),
            " ".join(self.characters),
            self.time_in_story,
            self.why,
        ]
        return "\n".join(p for p in parts if p)

    def render(self) -> str:
        """One prompt line (or a few) for the memory block."""
        if self.kind == "character":
            head = self.name + (f"（又名：{'、'.join(self.aliases)}）" if self.aliases else "")
            extra = [
                f"性格：{'、'.join(self.traits)}" if self.traits else "",
                "关系：" + "；".join(f"{k}：{v}" for k, v in self.relationships.items())
                if self.relationships
                else "",
                f"现状：{self.state}" if self.state else "",
            ]
            return f"- {head}：{self.text}" + "".join(f" {e}。" for e in extra if e)
        if self.kind == "setting":
            head = self.name + (f"（又名：{'、'.join(self.aliases)}）" if self.aliases else "")
            return f"- {head}：{self.text}"
        if self.kind == "plot":
            where = ""
            if self.chapter is not None:
                where = f"第{self.chapter}章" + (f"至第{self.chapter_end}章" if self.chapter_end else "")
            when = f"（{self.time_in_story}）" if self.time_in_story else ""
            who = f" 涉及：{'、'.join(self.characters)}" if self.characters else ""
            thread = ""
            if self.thread == "open":
                due = f"，计划第{self.payoff_chapter}章回收" if self.payoff_chapter is not None else ""
                thread = f"（伏笔未回收{due}）"
            elif self.thread == "closed":
                thread = "（伏笔已回收）"
            return f"- {where}{when}{self.name + '：' if self.name else ''}{self.text}{thread}{who}"
        speakers = "、".join(self.characters) or "某人"
        why = f"（{self.why}）" if self.why else ""
        where = f"第{self.chapter}章 " if self.chapter is not None else ""
        return f"- {where}{speakers}：{self.text}{why}"


def make_entry(**fields: Any) -> MemoryEntry:
    """Build a validated entry; a bad field is a :class:`StoryMemoryError` naming it."""
    try:
        return MemoryEntry(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "entry"
        raise StoryMemoryError(
            f"记忆条目无效 (invalid memory entry): {where}",
            expected=_expected(where),
            received=err.get("input") if where != "entry" else {k: fields.get(k) for k in ("kind", "name")},
            fix=err["msg"],
        ) from None


def _expected(field: str) -> str:
    return {
        "kind": "one of " + ", ".join(KINDS),
        "name": f"a name of at most {MAX_NAME} characters",
        "text": f"main text of 1–{MAX_TEXT} characters",
        "importance": "an integer 1–5",
        "thread": 'open, closed or "" (plot entries only)',
        "payoff_chapter": "a chapter number (plot threads only)",
    }.get(field, "see `xiaoshuo memory add --help`")
