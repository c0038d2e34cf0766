"""``compose()`` — assembles and budgets the prompt of one writing generation (chapter, 续写, 改写, 随手写).

The request texts come from :mod:`xiaoshuo.writing.prompts` (the caller passes ``request``); planning,
summary, extraction and consistency prompts are built there too, not here.  A prompt is a system
message plus one user message made of sections with Chinese headings, ordered from the most stable
to the least, so consecutive segments of a chapter share the longest possible prefix (vLLM reuses it)::

    system prompt · 【作品信息】 · 【本章大纲】 · 【后续章节】 · 【前情提要】 · 【伏笔】 · 【相关记忆】 ·
    【上一章结尾】 · 【前文】 · 【写作要求】

Each section is fitted into one token budget by *priority* (request and this chapter's outline
first, then the preceding text, the novel card, memory, summaries, the following chapters), and
every candidate item — each memory entry, each summary, each following synopsis, the text tail —
is reported in ``Composition.account`` as included, cut or dropped, with its tokens and why.
That account is what ``write chapter --dry-run --json`` prints and the context inspector shows.

Memory is retrieved with the chapter's synopsis, its characters and places, the request and the
recent text, and is chapter-aware: while writing chapter N nothing that became true after N is
shown, and for a character the latest state at or before N wins (``memory.retrieve``).  It is
cast-aware: the events of the chapter's planned characters (and of those named in the plan or the
recent text) come before other retrieved entries, the most recent whole, older ones condensed into one
history line per character when the memory budget is tight (``memory.build_context``).  A memory
that cannot run its dense part degrades to triggers + BM25 with a warning; only an unreadable store
stops composing.

Tokens are counted with the engine's counter (exact with a local tokenizer, a conservative
estimate on an ``openai`` backend without one — the account says which).  This module builds text;
it never generates, and it writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.writing.project import Novel
from xiaoshuo.writing.prompts import Prompts, free_request, next_line, plan_block, summary_line
from xiaoshuo.writing.schema import ChapterPlan, WritingError
from xiaoshuo.writing.textstats import count_chars

log = logging.getLogger(__name__)

SEP = "\n\n"
HEADINGS = (
    "作品信息",
    "本章大纲",
    "后续章节",
    "前情提要",
    "伏笔",
    "相关记忆",
    "上一章结尾",
    "前文",
    "写作要求",
)
TEMPLATE_TOKENS = 8  # chat-template tokens around the messages, kept free by prompt_budget
MIN_TAIL_CHARS = 200  # the text tail is cut from its start, never below this while anything else fits


@dataclass
class Composition:
    messages: list[dict[str, str]]
    user: str  # the user message (all sections)
    account: list[dict[str, Any]]
    budget: int
    tokens: int  # tokens of system + user as counted
    memory: list[dict[str, Any]] = field(default_factory=list)  # entries included (id, kind, name, chapter)
    summaries: list[int] = field(default_factory=list)  # chapters whose summaries were included
    #: what went in, as a fingerprint for Version.inputs (summaries, the previous ending, memory entries)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    token_count_exact: bool = True
    tokenizer_source: str = ""
    dense_used: bool | None = None  # None: no memory retrieved

    def section(self, heading: str) -> str:
        """The text under 【heading】 in the user message ('' when the section is absent)."""
        marker = f"【{heading}】\n"
        start = 0 if self.user.startswith(marker) else self.user.find(SEP + marker)
        if start < 0:
            return ""
        start = start + (len(marker) if start == 0 else len(SEP) + len(marker))
        ends = [self.user.find(SEP + f"【{h}】\n", start) for h in HEADINGS]
        end = min((e for e in ends if e >= 0), default=len(self.user))
        return self.user[start:end]

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "account": self.account,
            "budget": self.budget,
            "tokens": self.tokens,
            "memory": self.memory,
            "summaries": self.summaries,
            "inputs": self.inputs,
            "warnings": self.warnings,
            "token_count_exact": self.token_count_exact,
            "tokenizer_source": self.tokenizer_source,
            "dense_used": self.dense_used,
        }


@dataclass
class _Item:
    section: str
    source: str
    text: str
    id: str = ""
    name: str = ""
    tokens: int = 0
    included: bool = False
    reason: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "source": self.source,
            "id": self.id,
            "name": self.name,
            "tokens": self.tokens,
            "included": self.included,
            "reason": self.reason,
        }


class _Budget:
    def __init__(self, total: int, count: Callable[[str], int]) -> None:
        self.total, self.used, self.count = total, 0, count

    @property
    def left(self) -> int:
        return self.total - self.used

    def take(self, item: _Item, reason: str, cap: int | None = None) -> bool:
        item.tokens = item.tokens or self.count(item.text + SEP)
        limit = self.left if cap is None else min(cap, self.left)
        if item.tokens <= limit:
            self.used += item.tokens
            item.included, item.reason = True, reason
            return True
        item.included = False
        item.reason = f"over budget: needs {item.tokens} tokens, {max(limit, 0)} left"
        return False


def prompt_budget(engine: Any, max_tokens: int, fixed: int = 0) -> int:
    """The most tokens a composed prompt may take: ``Engine.context_len`` less the answer's
    ``max_tokens`` and :data:`TEMPLATE_TOKENS`, at most ``fixed`` (``writing.prompt_budget``) when set."""
    room = engine.context_len - max_tokens - TEMPLATE_TOKENS
    return max(64, min(fixed, room) if fixed else room)


def compose(
    novel: Novel | None,
    *,
    settings: Any,
    count_tokens: Callable[[str], int],
    chapter: int | None = None,
    text: str = "",
    request: str = "",
    store: Any = None,
    memory_novel: str | None = None,
    memory_on: bool = True,
    budget: int | None = None,
    system_prompt: str | None = None,
    token_count_exact: bool = True,
    tokenizer_source: str = "",
    previous_text: str | None = None,
    dense_timeout: float | None = None,
) -> Composition:
    """Build the messages for one generation and the account of what went in.

    ``novel`` and ``chapter`` give the card, outline, summaries and the previous chapter's ending
    (``None`` for a free request); ``text`` is the text so far (this chapter's, or a free story);
    ``store`` is an open ``MemoryStore`` (``None`` or ``memory_on=False`` skips memory);
    ``budget`` is the most tokens of the whole prompt (system + user); ``dense_timeout`` bounds the wait
    for an embedding model still loading (then memory goes on without its dense part, with a warning).
    """
    w = settings.writing
    system = settings.engine.system_prompt if system_prompt is None else system_prompt
    total = budget if budget is not None else (w.prompt_budget or 8192)
    b = _Budget(total, count_tokens)
    b.used = count_tokens("\n".join(f"【{h}】" for h in HEADINGS))  # headings, reserved up front
    account: list[_Item] = []
    warnings: list[str] = []

    sys_item = _Item("system", "config", system, name="engine.system_prompt")
    if system:
        b.take(sys_item, "always")
        account.append(sys_item)
    prompts = Prompts.from_settings(settings)
    req_text = request.strip() or free_request(prompts)
    req = _Item("写作要求", "request", req_text)
    if not b.take(req, "always"):
        raise WritingError(
            "写作要求本身就超出了提示词预算 (the request alone does not fit the prompt budget)",
            expected=f"<= {b.left + req.tokens} tokens",
            received=f"{req.tokens} tokens",
            fix="缩短写作要求，或增大 writing.prompt_budget / 模型上下文",
        )
    account.append(req)

    card = novel.card() if novel is not None else None
    outline = novel.outline() if novel is not None else None
    plan = outline.chapter(chapter) if outline is not None and chapter is not None else None

    plan_item = None
    if plan is not None:
        plan_item = _Item("本章大纲", f"outline:{plan.number}", _render_plan(plan, card, outline, prompts))
        if not b.take(plan_item, "the chapter being written"):
            plan_item.text = _cut_end(plan_item.text, b, count_tokens)
            plan_item.tokens = count_tokens(plan_item.text + SEP)
            b.take(plan_item, "the chapter being written (synopsis cut to fit)")
        account.append(plan_item)

    # the preceding text: first pass gets at most half of what is left
    tail_src = text[-w.tail_chars :] if w.tail_chars else ""
    tail = _Item("前文", "text", tail_src, name=f"{count_chars(text)} 字 so far")
    if tail_src:
        _fit_tail(tail, b, count_tokens, cap=b.left // 2)
        account.append(tail)

    card_item = None
    if card is not None:
        card_item = _Item("作品信息", "card", card.render(), name=card.title)
        if not b.take(card_item, "the novel card"):
            card_item.text = _cut_end(card_item.text, b, count_tokens)
            card_item.tokens = 0
            b.take(card_item, "the novel card (cut to fit)")
        account.append(card_item)

    # previous chapter's ending, when this chapter has little text yet
    prev_item = None
    if previous_text is None and novel is not None and chapter and chapter > 1 and len(text) < w.tail_chars:
        previous_text = novel.text(chapter - 1)
    if previous_text and len(text) < w.tail_chars:
        want = max(MIN_TAIL_CHARS, (w.tail_chars - len(text)) // 2)
        prev_item = _Item("上一章结尾", f"chapter:{(chapter or 1) - 1}", previous_text[-want:])
        _fit_tail(prev_item, b, count_tokens, cap=b.left // 3)
        account.append(prev_item)

    memory_block, memory_rows, memory_used, dense_used, memory_inputs = _memory(
        _MemoryAsk(
            memory_novel or (novel.slug if novel is not None else None),
            store if memory_on else None,
            plan,
            req_text,
            text,
            chapter,
            dense_timeout,
        ),
        settings,
        b,
        count_tokens,
        warnings,
    )
    account.extend(memory_rows)

    summaries, used_summaries = _summaries(outline, chapter, w.recent_summaries, b, prompts)
    account.extend(summaries)
    slug = memory_novel or (novel.slug if novel is not None else None)
    due = _due_threads(store if memory_on else None, slug, chapter, w, b)
    account.extend(due)
    nexts = _next_synopses(outline, chapter, w.next_synopses, b, prompts)
    account.extend(nexts)

    if tail_src and count_chars(tail.text) < count_chars(tail_src):  # second pass: the rest to the tail
        b.used -= tail.tokens if tail.included else 0
        _fit_tail(tail, b, count_tokens, cap=b.left, source_text=tail_src)

    user = _assemble(card_item, plan_item, nexts, summaries, memory_block, prev_item, tail, req, due)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    tokens = (count_tokens(system + SEP) if system else 0) + count_tokens(user)
    while tokens > total and tail.included and count_chars(tail.text) > 0:  # sums bound the whole; guard
        tail.text = tail.text[len(tail.text) // 8 + 1 :]
        tail.reason = "cut from its start to fit after joining"
        user = _assemble(card_item, plan_item, nexts, summaries, memory_block, prev_item, tail, req, due)
        messages[-1]["content"] = user
        tokens = (count_tokens(system + SEP) if system else 0) + count_tokens(user)
    from xiaoshuo.writing import flow

    inputs = [flow.summary_input(outline.chapter(n)) for n in used_summaries] if outline is not None else []
    if prev_item is not None and prev_item.included and prev_item.text and chapter and chapter > 1:
        inputs.append(flow.text_input(chapter - 1, prev_item.text))
    inputs += memory_inputs
    if tokens > total:
        raise WritingError(
            "提示词超出预算 (the prompt does not fit its budget)",
            expected=f"<= {total} tokens",
            received=f"{tokens} tokens",
            fix="缩短写作要求或大纲要点，或增大 writing.prompt_budget",
        )
    return Composition(
        messages=messages,
        user=user,
        account=[a.row() for a in account],
        budget=total,
        tokens=tokens,
        memory=memory_used,
        summaries=used_summaries,
        inputs=inputs,
        warnings=warnings,
        token_count_exact=token_count_exact,
        tokenizer_source=tokenizer_source,
        dense_used=dense_used,
    )


def _render_plan(plan: ChapterPlan, card: Any, outline: Any, prompts: Prompts) -> str:
    vol = outline.volume_of(plan.number) if outline is not None else None
    return plan_block(
        prompts,
        number=plan.number,
        title=plan.title,
        volume=vol.title if vol and vol.title else "",
        synopsis=plan.synopsis,
        characters=plan.characters,
        places=plan.places,
        target=plan.target_chars or (card.chapter_chars if card is not None else None),
    )


def _cut_end(text: str, b: _Budget, count: Callable[[str], int]) -> str:
    """The longest prefix of ``text`` that fits what is left (binary search on characters)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid] + "…" + SEP) <= b.left:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "…" if lo < len(text) else text


def _fit_tail(
    item: _Item, b: _Budget, count: Callable[[str], int], *, cap: int, source_text: str | None = None
) -> None:
    """Keep the longest *ending* of the text that fits ``cap`` tokens (cut at a line start if possible)."""
    src = item.text if source_text is None else source_text
    cap = min(cap, b.left)
    full = count(src + SEP)
    if full <= cap:
        item.text, item.tokens, item.included = src, full, True
        item.reason = "complete"
        b.used += full
        return
    lo, hi = 0, len(src)  # lo: chars kept from the end
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(src[-mid:] + SEP) <= cap:
            lo = mid
        else:
            hi = mid - 1
    kept = src[-lo:] if lo else ""
    newline = kept.find("\n")
    if 0 <= newline < len(kept) // 3:
        kept = kept[newline + 1 :]
    if count_chars(kept) == 0:
        item.text, item.tokens, item.included = "", count(src + SEP), False
        item.reason = f"dropped: no room (needs {full} tokens, {cap} available)"
        return
    item.text, item.tokens, item.included = kept, count(kept + SEP), True
    item.reason = f"cut from its start: kept the last {len(kept)} of {len(src)} chars"
    b.used += item.tokens


@dataclass
class _MemoryAsk:
    slug: str | None
    store: Any
    plan: ChapterPlan | None
    request: str
    text: str
    chapter: int | None
    dense_timeout: float | None


def _memory(ask: _MemoryAsk, settings, b: _Budget, count, warnings):
    from xiaoshuo.memory import build_context

    if ask.store is None or ask.slug is None:
        return "", [], [], None, []
    plan, request, text, chapter = ask.plan, ask.request, ask.text, ask.chapter
    terms = [*(plan.characters if plan else []), *(plan.places if plan else [])]
    query = "\n".join(
        x for x in ((plan.title if plan else ""), (plan.synopsis if plan else ""), request) if x
    )
    cast = list(plan.characters) if plan else []  # with the names in the plan text and recent text
    result = _retrieve(ask.store, ask.slug, query, text[-2000:], chapter, terms, ask.dense_timeout, cast)
    warnings.extend(result.warnings)
    budget = min(settings.memory.context_token_budget, max(b.left, 0))
    ctx = build_context(result.hits, budget, count)
    by_id = {h.entry.id: h.entry for h in result.hits}
    rows = [
        _Item("相关记忆", f"memory:{it['kind']}", "", id=it["id"], name=it["name"], tokens=it["tokens"],
              included=included, reason=it["reason"])
        for included, items in ((True, ctx.included), (False, ctx.dropped))
        for it in items
    ]  # fmt: skip
    used = [
        {"id": it["id"], "kind": it["kind"], "name": it["name"],
         "chapter": by_id[it["id"]].chapter if it["id"] in by_id else None,
         "condensed": bool(it.get("condensed"))}
        for it in ctx.included
    ]  # fmt: skip
    if ctx.text:
        b.used += ctx.tokens + count(SEP)
    from xiaoshuo.writing.flow import memory_input

    inputs = [memory_input(by_id[it["id"]]) for it in ctx.included if it["id"] in by_id]
    return ctx.text, rows, used, result.dense_used, inputs


def _retrieve(store, slug, query, recent, chapter, terms, dense_timeout, cast) -> Any:
    from xiaoshuo.memory import retrieve

    return retrieve(
        store,
        slug,
        query,
        recent_text=recent,
        max_chapter=chapter,
        extra_terms=list(terms),
        dense_timeout=dense_timeout,
        cast=cast,
    )


def _summaries(outline, chapter, keep, b: _Budget, prompts: Prompts) -> tuple[list[_Item], list[int]]:
    if outline is None or not chapter or keep <= 0:
        return [], []
    earlier = [c for c in outline.chapters() if c.number < chapter and c.summary.strip()][-keep:]
    items = [
        _Item(
            "前情提要",
            f"summary:{c.number}",
            summary_line(
                prompts, number=c.number, title=c.title, summary=c.summary.strip(),
                who=c.summary_who, where=c.summary_where, when=c.summary_when,
            ),  # a generated summary's who/where/when (``chapter summarize``), when present
            id=str(c.number),
            name=c.title,
        )
        for c in earlier
    ]  # fmt: skip
    for item in reversed(items):  # the most recent first; the oldest is dropped first
        b.take(item, "recent chapter summary")
    return items, [int(i.id) for i in items if i.included]


def _next_synopses(outline, chapter, keep, b: _Budget, prompts: Prompts) -> list[_Item]:
    if outline is None or not chapter or keep <= 0:
        return []
    later = [c for c in outline.chapters() if c.number > chapter and c.synopsis.strip()][:keep]
    items = [
        _Item(
            "后续章节",
            f"outline:{c.number}",
            next_line(prompts, number=c.number, title=c.title, synopsis=c.synopsis.strip()),
            id=str(c.number),
            name=c.title,
        )
        for c in later
    ]
    for item in items:  # the nearest first; the farthest is dropped first
        b.take(item, "following chapter (for foreshadowing)")
    return items


def _due_threads(store, slug, chapter, w, b: _Budget) -> list[_Item]:
    """Open threads (伏笔) due within ``writing.thread_window`` chapters, below memory in priority."""
    if store is None or slug is None or not chapter:
        return []
    from xiaoshuo.writing.threads import due_threads, render_due

    items = [
        _Item("伏笔", f"thread:{e.id}", render_due(e, chapter), id=e.id, name=e.name or e.text[:20])
        for e in due_threads(store.retriever(slug).entries, chapter, w.thread_window)
    ]
    for item in items:  # the most pressing first: overdue, then the nearest payoff
        b.take(item, "open thread due near this chapter")
    return items


def _assemble(card, plan, nexts, summaries, memory_block, prev, tail, req, due=()) -> str:
    parts = []
    if card is not None and card.included:
        parts.append(f"【作品信息】\n{card.text}")
    if plan is not None and plan.included:
        parts.append(f"【本章大纲】\n{plan.text}")
    nx = [i.text for i in nexts if i.included]
    if nx:
        parts.append("【后续章节】\n" + "\n".join(nx))
    sm = [i.text for i in summaries if i.included]
    if sm:
        parts.append("【前情提要】\n" + "\n".join(sm))
    th = [i.text for i in due if i.included]
    if th:
        parts.append("【伏笔】\n" + "\n".join(th))
    if memory_block:
        parts.append(f"【相关记忆】\n{memory_block}")
    if prev is not None and prev.included and prev.text:
        parts.append(f"【上一章结尾】\n{prev.text}")
    if tail.included and tail.text:
        parts.append(f"【前文】\n{tail.text}")
    parts.append(f"【写作要求】\n{req.text}")
    return SEP.join(parts)
