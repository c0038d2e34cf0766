"""Compose-shaped training samples (``data.sample_format = "compose"``): each chapter of the author's corpus
as the prompt the writing loop would build to write it, with the chapter's own text as the answer.

For every chapter a book's card, plan and memory are put together, and the chapter is cut into segments
the way :class:`~xiaoshuo.writing.generate.Writer` segments a chapter (``writing.segment_chars`` 字 each,
earlier segments as 【前文】); each segment's prompt is made by the writer's own segment step
(``Writer._segment`` → :func:`~xiaoshuo.writing.compose.compose`, requests from
:func:`~xiaoshuo.writing.prompts.chapter_request`), so a sample's prompt is the prompt sent at writing time
and the two cannot drift apart.  The pieces:

* **card** — the book's title (file name / JSON metadata), genre, author, …, overridden by a sidecar
  ``<file stem>.book.toml`` or a folder-wide ``book.toml`` (keys of the novel card: title, author, genre,
  premise, style, pov); with ``prepare --novel SLUG`` the project's own card.
* **plan** — the chapter's title, its summary as the 要点, the characters and places it names.
* **summaries** (前情提要) — the project's accepted summaries; or a model's (``prepare --summarize``:
  :func:`~xiaoshuo.writing.planning.summarize_chapter`, batched, cached per chapter hash under
  ``<output>/prepared/summaries/`` so a killed run resumes without redoing a chapter); or, with no model,
  an extractive one (the opening and closing sentences and the names found).  The manifest records the
  source per chapter.
* **memory** — a temporary store (embedding ``none``: names + BM25) holding a card per character and place
  found by jieba (``nr`` / ``ns``, at least twice in the book, each from the chapter it first appears in);
  with ``prepare --novel SLUG`` the project's reviewed memory.  ``compose`` retrieves from it as it would
  while writing (chapter-aware), through the same retrieval.

Samples are fitted to ``data.chunk_size`` tokens *with* the chat template; the training side masks
everything but the answer (:mod:`xiaoshuo.training.data`).  This module builds samples; the pipeline
(:mod:`xiaoshuo.data.pipeline`) writes them, and it never writes into a novel or the novel's memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.files import atomic_write_json
from xiaoshuo.writing.generate import MIN_SEGMENT_CHARS, Writer
from xiaoshuo.writing.schema import ChapterPlan, NovelCard, Outline, Volume, WritingError
from xiaoshuo.writing.textstats import count_chars

log = logging.getLogger(__name__)

SUMMARY_DIR = "summaries"  # under <output>/prepared/
CARD_KEYS = ("title", "author", "genre", "premise", "style", "pov")
GENRES = (
    "武侠",
    "仙侠",
    "玄幻",
    "奇幻",
    "都市",
    "言情",
    "科幻",
    "历史",
    "悬疑",
    "军事",
    "游戏",
    "灵异",
    "同人",
)
_SENTENCE = re.compile(r"[^。！？!?…\n]+[。！？!?…]*[”」』]?")
_TEMPLATE_MARGIN = 24  # chat-template tokens when the tokenizer has no template
MAX_NAMES = (6, 4)  # characters, places named in one chapter's plan
OnSummary = Callable[[int, int, str], None]  # (done, total, chapter title)


@dataclass
class SourceChapter:
    """One chapter as the builder sees it: its text, and its summary once known."""

    number: int
    title: str
    text: str
    summary: str = ""
    who: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    when: str = ""
    source: str = ""  # project | model | extractive


class BookView:
    """A book held in memory, read by ``compose`` and the writer as they read a :class:`Novel`:
    ``slug``, ``card()``, ``outline()``, ``plan(n)``, ``text(n)``.  Nothing is on disk."""

    def __init__(self, card: NovelCard, outline: Outline, texts: dict[int, str], base: Any = None) -> None:
        self._card, self._outline, self._texts, self._base = card, outline, texts, base

    def __getattr__(self, name: str) -> Any:
        """Anything else the writer reads comes from the project it stands for (``prepare --novel``)."""
        base = self.__dict__.get("_base")
        if base is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(base, name)

    @property
    def slug(self) -> str:
        return self._card.slug

    def card(self) -> NovelCard:
        return self._card

    def outline(self) -> Outline:
        return self._outline

    def plan(self, number: int) -> ChapterPlan:
        plan = self._outline.chapter(number)
        if plan is None:
            raise XiaoshuoError(f"没有第 {number} 章 (no chapter {number})")
        return plan

    def text(self, number: int) -> str:
        return self._texts.get(number, "")


class _CountingEngine:
    """What the writer asks of an engine while composing (never generates): token counts, context length."""

    token_count_exact = True

    def __init__(self, counter: Any, context_len: int, source: str) -> None:
        self.counter, self.context_len, self.tokenizer_source = counter, context_len, source

    def count_tokens(self, text: str) -> int:
        return self.counter.count(text)


# ---------------------------------------------------------------------------------------------- the builder
class ComposeSamples:
    """Builds compose samples for the pipeline; one per ``prepare`` run.

    ``novel``: an open :class:`Novel` (``prepare --novel``) whose accepted chapters, card, summaries and
    reviewed memory (``novel_memory``: its entries) are used instead of the files; ``engine``: a loaded
    engine for ``--summarize`` (None: project summaries, cached ones, else extractive)."""

    def __init__(
        self,
        settings: Any,
        *,
        novel: Any = None,
        novel_memory: list[Any] | None = None,
        engine: Any = None,
        lora: str | None = None,
        batch: int = 8,
        on_summary: OnSummary | None = None,
    ) -> None:
        self.settings = settings
        self.novel = novel
        self.novel_memory = novel_memory or []
        self.engine = engine
        self.lora = lora
        self.batch = max(1, batch)
        self.on_summary = on_summary
        self.chapters: list[dict[str, Any]] = []  # the manifest's per-chapter record
        self.skipped: list[str] = []
        self._store: Any = None
        self._store_dir: Path | None = None
        self._cache_dir: Path | None = None
        self._overhead: int | None = None

    # ------------------------------------------------------------------ lifecycle (the pipeline calls these)
    def open(self, out: Path) -> None:
        """Get ready to build under ``out`` (the output folder): the summary cache, a scratch memory store."""
        from xiaoshuo.memory import MemoryStore

        self._cache_dir = out / "prepared" / SUMMARY_DIR
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        self._store_dir = out / "prepared" / f".compose-memory-{os.getpid()}"
        shutil.rmtree(self._store_dir, ignore_errors=True)
        scratch = self.settings.model_copy(
            update={
                "memory": self.settings.memory.model_copy(
                    update={"embedding_model": "none", "chroma_url": ""}
                )
            }
        )
        self._store = MemoryStore(scratch, path=self._store_dir)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._store_dir is not None:
            shutil.rmtree(self._store_dir, ignore_errors=True)

    def report(self) -> dict[str, Any]:
        sources = Counter(c["summary_source"] for c in self.chapters)
        return {"chapters": self.chapters, "summary_sources": dict(sources), "skipped": self.skipped}

    # ------------------------------------------------------------------ samples of one document
    def samples(
        self, doc: Any, chapters: list[Any], counter: Any, path: Path | None = None
    ) -> Iterator[tuple[dict[str, Any], int]]:
        """``(sample, tokens)`` for each segment of each chapter of ``doc`` (chapters from the pipeline)."""
        if self._store is None:
            raise XiaoshuoError("ComposeSamples.open() was not called")
        if self.novel is not None:
            book, source = self._project_book()
        else:
            book, source = self._file_book(doc, chapters, path)
        yield from self._book_samples(book, source, counter, doc_id=getattr(doc, "doc_id", book.slug))

    def _file_book(
        self, doc: Any, chapters: list[Any], path: Path | None
    ) -> tuple[BookView, list[SourceChapter]]:
        slug = "book-" + hashlib.sha256(doc.doc_id.encode()).hexdigest()[:12]
        card = book_card(slug, doc, path)
        numbered = [
            SourceChapter(i, (ch.title or "").strip() or f"第{i}章", ch.text)
            for i, ch in enumerate((c for c in chapters if c.text.strip()), start=1)
        ]
        names = find_names([c.text for c in numbered])
        self._summaries(card, numbered, names)
        self._store.add(memory_cards(slug, numbered, names))
        outline = Outline(volumes=[Volume(title=card.title, chapters=[
            _plan(c, names.in_chapter(c.number)) for c in numbered
        ])])  # fmt: skip
        return BookView(card, outline, {c.number: c.text for c in numbered}), numbered

    def _project_book(self) -> tuple[BookView, list[SourceChapter]]:
        """The project's accepted chapters, card, outline and summaries; a chapter without an accepted
        summary gets one (model / extractive) in this view only — the novel on disk is not changed."""
        novel = self.novel
        outline = novel.outline().model_copy(deep=True)
        numbered = []
        for plan in outline.chapters():
            text = novel.text(plan.number)
            if not text.strip():
                continue
            summary = plan.summary.strip()
            numbered.append(SourceChapter(
                plan.number, plan.title, text, summary, list(plan.summary_who), list(plan.summary_where),
                plan.summary_when, "project" if summary else "",
            ))  # fmt: skip
        missing = [c for c in numbered if not c.source]
        if missing:
            self._summaries(novel.card(), missing, find_names([c.text for c in missing]))
            for c in missing:
                plan = outline.chapter(c.number)
                plan.summary, plan.summary_who, plan.summary_where = c.summary, c.who, c.where
                plan.summary_when = c.when
        if self.novel_memory:
            self._store.add(self.novel_memory)
        return BookView(novel.card(), outline, {c.number: c.text for c in numbered}, base=novel), numbered

    # ------------------------------------------------------------------ summaries
    def _summaries(self, card: NovelCard, chapters: list[SourceChapter], names: Names) -> None:
        todo = []
        for c in chapters:
            cached = self._cached(c)
            if cached is not None:
                c.summary, c.who, c.where, c.when = (
                    cached["summary"],
                    cached["who"],
                    cached["where"],
                    cached["when"],
                )
                c.source = "model"
            elif self.engine is not None:
                todo.append(c)
        if todo:
            self._summarize(card, chapters, todo)
        for c in chapters:
            if not c.source:
                extractive_summary(c, names.in_chapter(chapters.index(c) + 1))

    def _key(self, c: SourceChapter) -> str:
        return hashlib.sha256(f"{c.title}\0{c.text}".encode()).hexdigest()

    def _cached(self, c: SourceChapter) -> dict[str, Any] | None:
        path = self._cache_dir / f"{self._key(c)}.json" if self._cache_dir else None
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("summary"), str) else None

    def _summarize(self, card: NovelCard, chapters: list[SourceChapter], todo: list[SourceChapter]) -> None:
        """Summaries of ``todo`` by the model, ``batch`` at a time (the engine batches them); each is cached
        the moment it is done, so a killed run loses at most the batch in flight."""
        from xiaoshuo.writing import run_sync
        from xiaoshuo.writing.planning import PlanLimits, summarize_chapter
        from xiaoshuo.writing.prompts import Prompts

        limits, prompts = PlanLimits.from_settings(self.settings), Prompts.from_settings(self.settings)
        view = BookView(card, Outline(volumes=[Volume(title=card.title, chapters=[
            ChapterPlan(number=c.number, title=c.title) for c in chapters
        ])]), {c.number: c.text for c in chapters})  # fmt: skip
        done = 0

        async def one(c: SourceChapter) -> None:
            nonlocal done
            try:
                answer = await summarize_chapter(
                    self.engine, view, c.number, limits=limits, lora=self.lora, prompts=prompts, save=False
                )
            except XiaoshuoError as exc:  # one chapter's failed form: extractive for it, and say so
                self.skipped.append(
                    f"{card.title} {c.title}: 模型摘要失败，用抽取式 (model summary failed): {exc}"
                )
                return
            c.summary, c.who, c.where, c.when = answer.summary.strip(), answer.who, answer.where, answer.when
            c.source = "model"
            atomic_write_json(
                self._cache_dir / f"{self._key(c)}.json",
                {"title": c.title, "summary": c.summary, "who": c.who, "where": c.where, "when": c.when},
            )
            done += 1
            if self.on_summary:
                self.on_summary(done, len(todo), c.title)

        async def run() -> None:
            for start in range(0, len(todo), self.batch):
                await asyncio.gather(*(one(c) for c in todo[start : start + self.batch]))

        run_sync(run())

    # ------------------------------------------------------------------ segments
    def _book_samples(
        self, book: Any, chapters: list[SourceChapter], counter: Any, *, doc_id: str
    ) -> Iterator[tuple[dict[str, Any], int]]:
        data = self.settings.data
        overhead = self._template_overhead(counter)
        whole = "".join(c.text for c in chapters)
        cpt = max(0.3, count_chars(whole) / max(1, counter.count(whole)))  # 字 per token of this book
        room = data.chunk_size - overhead
        seg_chars = max(MIN_SEGMENT_CHARS, min(self.settings.writing.segment_chars, int(room * cpt * 0.4)))
        settings = self.settings.model_copy(update={"writing": self.settings.writing.model_copy(
            update={"segment_chars": seg_chars, "prompt_budget": 0}
        )})  # fmt: skip
        source = getattr(counter.tokenizer, "name_or_path", "")
        for c in chapters:
            record = {"doc": doc_id, "chapter": c.number, "title": c.title, "summary_source": c.source,
                      "samples": 0}  # fmt: skip
            self.chapters.append(record)
            target = min(200_000, count_chars(c.text))
            if target < 50:
                record["skipped"] = "shorter than 50 字"
                continue
            for sample, tokens in self._chapter(
                settings, book, c, target, counter, room, cpt, source, overhead
            ):
                record["samples"] += 1
                yield sample, tokens

    def _chapter(self, settings, book, c, target, counter, room, cpt, source, overhead):
        rest, new, seg = c.text.strip(), "", 0
        while count_chars(rest) > 0 and seg < settings.writing.max_segments:
            context, over = room, 1
            for _ in range(4):  # recompose with a smaller context until prompt + answer fit
                writer = Writer(settings, _CountingEngine(counter, context, source), book, store=self._store)
                op = writer.chapter_operation(c.number, target_chars=target)
                try:  # the writing loop's own segment step: the same request and compose() call
                    comp, _ = writer._segment(op, seg, new, cpt)
                except WritingError:  # not even the request fits what is left of the chunk
                    break
                want = max(MIN_SEGMENT_CHARS, min(settings.writing.segment_chars, target - count_chars(new)))
                answer, after = cut_segment(rest, want)
                tokens = counter.count(comp.messages[0]["content"]) if len(comp.messages) > 1 else 0
                tokens += counter.count(comp.user) + counter.count(answer) + overhead
                over = tokens - self.settings.data.chunk_size
                if over <= 0:
                    break
                context -= over + 16
            if over > 0:
                self.skipped.append(f"{book.card().title} {c.title} 段{seg + 1}: 放不进 data.chunk_size")
                return
            messages = [*comp.messages, {"role": "assistant", "content": answer}]
            yield {"messages": messages}, tokens
            new, rest, seg = new + answer, after, seg + 1

    def _template_overhead(self, counter: Any) -> int:
        """Tokens the chat template adds around system + user + answer (measured once)."""
        if self._overhead is None:
            tok = counter.tokenizer
            msgs = [{"role": "system", "content": "甲"}, {"role": "user", "content": "乙"},
                    {"role": "assistant", "content": "丙"}]  # fmt: skip
            try:
                ids = tok.apply_chat_template(msgs, tokenize=True)
                ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
                self._overhead = len(ids) - sum(counter.count(m["content"]) for m in msgs) + 2
            except Exception:  # no chat template: a fixed margin
                self._overhead = _TEMPLATE_MARGIN
        return self._overhead


# ---------------------------------------------------------------------------------------------- the pieces
def book_card(slug: str, doc: Any, path: Path | None) -> NovelCard:
    """The card of a corpus file: title and genre from the file (name, JSON metadata), overridden by
    ``<stem>.book.toml`` next to it or ``book.toml`` in its folder."""
    meta = getattr(doc, "meta", {}) or {}
    values: dict[str, Any] = {"title": (doc.title or "").strip() or slug}
    name = path.name if path is not None else str(getattr(doc, "source", ""))
    genre = str(meta.get("genre") or "") or next((g for g in GENRES if g in name), "")
    if genre:
        values["genre"] = genre
        parts = [p for p in re.split(r"[-_ ·]+", values["title"]) if p and p != genre]
        values["title"] = "-".join(parts) or values["title"]  # 青云剑 from 武侠-青云剑.txt
    if meta.get("author"):
        values["author"] = str(meta["author"])
    if path is not None:
        for side in (path.parent / "book.toml", path.with_name(f"{path.stem}.book.toml")):
            values.update(_sidecar(side))
    return NovelCard(slug=slug, **values)


def _sidecar(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise XiaoshuoError(
            f"书籍信息文件读不了 (cannot read a book.toml): {path.name}",
            received=str(exc),
            fix='改正 TOML，例如 title = "书名"\\ngenre = "武侠"',
        ) from None
    return {k: str(v) for k, v in data.items() if k in CARD_KEYS and str(v).strip()}


@dataclass
class Names:
    """Characters and places of a book: per chapter, the names with their counts, most frequent first."""

    people: list[Counter]
    places: list[Counter]
    first: dict[str, tuple[str, int]]  # name → (kind, chapter it first appears in)

    def in_chapter(self, number: int) -> tuple[list[str], list[str]]:
        i = number - 1
        if not 0 <= i < len(self.people):
            return [], []
        return ([n for n, _ in self.people[i].most_common(MAX_NAMES[0])],
                [n for n, _ in self.places[i].most_common(MAX_NAMES[1])])  # fmt: skip


def find_names(texts: list[str], *, min_count: int = 2) -> Names:
    """Person (``nr``) and place (``ns``) names (jieba), kept when a book has them ``min_count`` times."""
    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(logging.WARNING)
    people, places = [], []
    for text in texts:
        p, s = Counter(), Counter()
        for word, flag in pseg.lcut(text):
            if len(word) >= 2 and flag == "nr":
                p[word] += 1
            elif len(word) >= 2 and flag == "ns":
                s[word] += 1
        people.append(p)
        places.append(s)
    total_p, total_s = sum(people, Counter()), sum(places, Counter())
    keep_p = {n for n, k in total_p.items() if k >= min_count}
    keep_s = {n for n, k in total_s.items() if k >= min_count and n not in keep_p}
    people = [Counter({n: k for n, k in c.items() if n in keep_p}) for c in people]
    places = [Counter({n: k for n, k in c.items() if n in keep_s}) for c in places]
    first: dict[str, tuple[str, int]] = {}
    for i, (p, s) in enumerate(zip(people, places, strict=True), start=1):
        for n in p:
            first.setdefault(n, ("character", i))
        for n in s:
            first.setdefault(n, ("setting", i))
    return Names(people, places, first)


def memory_cards(slug: str, chapters: list[SourceChapter], names: Names) -> list[Any]:
    """A memory card per name: where it first appears and the sentence that shows it there."""
    from xiaoshuo.memory import MemoryEntry

    by_number = {c.number: c for c in chapters}
    cards = []
    for name, (kind, number) in names.first.items():
        chapter = by_number.get(number)
        sentence = next((s for s in sentences(chapter.text) if name in s), "") if chapter else ""
        text = f"第{number}章首次出现：{sentence[:120]}" if sentence else f"第{number}章首次出现"
        cards.append(MemoryEntry(novel=slug, kind=kind, name=name[:60], text=text, chapter=number))
    return cards


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if count_chars(s) >= 2]


def extractive_summary(c: SourceChapter, names: tuple[list[str], list[str]], *, chars: int = 60) -> None:
    """The offline 前情提要 of a chapter: its opening and closing sentences and the names in it."""
    said = sentences(c.text)
    if not said:
        c.summary = c.text.strip()[:chars]
    elif len(said) == 1:
        c.summary = said[0][:chars]
    else:
        c.summary = f"{said[0][:chars]}……{said[-1][:chars]}"
    c.who, c.where, c.when = list(names[0]), list(names[1]), ""
    c.source = "extractive"


def cut_segment(text: str, want: int) -> tuple[str, str]:
    """The next segment of ``text``: about ``want`` 字, ended at a sentence end within +25 % when there is
    one (else at ``want``); the rest of the text goes with it when under a fifth of ``want``."""
    if count_chars(text) <= want * 1.2:
        return text, ""
    i, have = 0, 0
    while i < len(text) and have < want:
        have += not text[i].isspace()
        i += 1
    stop, extra = i, 0
    while stop < len(text) and extra < want // 4:
        if text[stop] in "。！？!?…\n":
            stop += 1
            while stop < len(text) and text[stop] in "”」』…":
                stop += 1
            return text[:stop].rstrip(), text[stop:].lstrip("\n")
        extra += not text[stop].isspace()
        stop += 1
    return text[:i], text[i:]


def _plan(c: SourceChapter, names: tuple[list[str], list[str]]) -> ChapterPlan:
    return ChapterPlan(
        number=c.number, title=c.title[:200], synopsis=c.summary, characters=names[0], places=names[1],
        target_chars=max(50, min(200_000, count_chars(c.text))), status="final", summary=c.summary,
        summary_who=c.who, summary_where=c.where, summary_when=c.when,
    )  # fmt: skip
