"""Every instruction text sent to a model, one function per request kind, and the writer's overrides.

The texts are Chinese templates with ``{name}`` placeholders (:data:`DEFAULTS`).  The functions here
fill them: :func:`chapter_request` / :func:`continue_request` / :func:`rewrite_request` /
:func:`revise_request` (with :func:`fix_instruction`, one per finding of ``chapter revise``) (the 【写作要求】
of one segment, which :func:`~xiaoshuo.writing.compose.compose` places after the context it budgets),
:func:`outline_messages` (planning), :func:`summary_messages` (前情提要), :func:`extraction_messages`
(memory extraction) and :func:`check_messages` (the consistency judge); :func:`plan_block`,
:func:`summary_line` and :func:`next_line` write the outline's lines that ``compose`` places in the
context.  Every caller — the segment loop, the dry run, the WebUI's context inspector — builds its
request with the same function, so a preview is the prompt that is sent.

A writer can replace any template from a TOML file named by ``writing.prompts_file``::

    chapter_first = "请写第{number}章《{title}》，约{want}字。"
    chapter_format = "只输出正文。"

:meth:`Prompts.from_settings` reads and validates it (cached by the file's size and mtime): an unknown
key, a placeholder the template does not know, or a missing required placeholder is a
:class:`~xiaoshuo.errors.XiaoshuoError` naming the key.  Literal braces are written ``{{`` ``}}``.

Not here: the section headings (【前文】 …) and the layout of the composed context (``compose``); the
rendering of the novel card, a memory entry and a due thread (data: ``NovelCard.render``,
``MemoryEntry.render``, ``threads.render_due``); the JSON-format line of structured output
(:data:`JSON_HINT`, tied to ``structured.schema_sketch``'s notation: kept here, not overridable).
This module reads one file and builds strings; it generates nothing.
"""

from __future__ import annotations

import re
import string
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.files import read_user_file

#: key → (template, placeholders an override must keep, placeholders it may use besides those)
SPECS: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {}


def _spec(key: str, text: str, *, optional: tuple[str, ...] = ()) -> None:
    names = _placeholders(text)
    SPECS[key] = (text, frozenset(names - set(optional)), frozenset(optional))


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


# ---------------------------------------------------------------------------------- chapter writing
_spec(
    "chapter_first",
    "请开始写第{number}章《{title}》的正文。本章共约{target}字，这一段先写约{want}字。",
    optional=("number", "title", "target"),
)
_spec(
    "chapter_next",
    "请紧接【前文】继续写第{number}章《{title}》，不要重复前文。这一段写约{want}字。",
    optional=("number", "title", "target", "have"),
)
_spec("chapter_last", "这是本章最后一段，请按大纲收束本章。")
_spec("chapter_format", "直接输出小说正文，不要标题和说明。")
_spec("continue", "请紧接【前文】往下续写约{want}字，不要重复前文。直接输出小说正文。", optional=("have",))
_spec(
    "rewrite",
    "请{label}下面这段原文（写在【前文】之后），要求：{instruction}。\n【原文】\n{passage}\n{label}后约{target}字，",
    optional=("label", "target"),
)
_spec("rewrite_more", "已经写了{have}字（见【前文】末尾），请接着写约{want}字，", optional=("have",))
_spec("rewrite_format", "只输出改写后的正文。")
_spec("rewrite_instruction", "语言更生动，保持情节不变")
_spec("free_request", "请接着前文继续写。")
# ---------------------------------------------------------------------------------- revise (chapter revise)
_spec(
    "revise",
    "请{label}下面这段原文（它紧接在【前文】之后），按这些要求修改：\n{instructions}\n【原文】\n{passage}\n"
    "{after}{label}后约{target}字，",
    optional=("label", "target", "after"),
)
_spec("revise_after", "【后文】（改好的这段要能接上它，不要写出后文的内容）\n{text}\n")
_spec("fix_repeated_within", "这段与本章前文重复：换一种写法，保留情节，不要照搬前文的句子")
_spec(
    "fix_repeated_earlier",
    "这段与第{chapter}章重复：换一种写法，保留情节，不要照搬第{chapter}章的句子",
    optional=("chapter",),
)
_spec(
    "fix_flavour",
    "删掉或替换套话「{phrase}」，改成具体的动作、神态或环境描写",
)
_spec("fix_too_short", "本章比目标少约{missing}字：在这段里接着情节扩写，补足细节，不要改变结局")
_spec("fix_too_long", "本章比目标多约{extra}字：压缩这段，删去重复和多余的描写，保留情节")
_spec(
    "fix_missing",
    "大纲要求{what}「{name}」在本章出现，正文里没有：在这段里自然地写到{name}",
    optional=("what",),
)
_spec(
    "fix_dead_acts",
    "{name}已经死了（{state}）：不要让{name}说话或行动，改成回忆、别人提起或别的人物",
    optional=("state",),
)
_spec("fix_two_places", "{name}不能同时在两个地方：交代{name}的移动，或改成同一个地点")
_spec("fix_consistency", "{problem}：改写这句，消除和前文记忆的矛盾")
# ---------------------------------------------------------------------------------- context lines (compose)
_spec("plan_heading", "第{number}章 {title}{volume}", optional=("number", "title", "volume"))
_spec("plan_volume", "（{volume}）")
_spec("plan_synopsis", "要点：{synopsis}")
_spec("plan_characters", "出场人物：{names}")
_spec("plan_places", "地点：{names}")
_spec("plan_target", "本章目标字数：约{target}字")
_spec("summary_line", "第{number}章 {title}：{summary}", optional=("number", "title"))
_spec("summary_who", "人物：{names}")
_spec("summary_where", "地点：{names}")
_spec("summary_when", "时间：{when}")
_spec("summary_facts", "（{facts}）")
_spec("next_line", "第{number}章 {title}：{synopsis}", optional=("number", "title"))
# ---------------------------------------------------------------------------------- planning
_spec(
    "outline_ask",
    "请为这部小说续写大纲：第{first}章到第{last}章，共{count}章，按顺序给出每章的标题、"
    "要点（不超过{synopsis_chars}字）、出场人物和地点，并给出这些章所在的卷名。"
    "承接前面的章节，不要重复已有情节。",
    optional=("first", "last", "count", "synopsis_chars"),
)
_spec("outline_memory", "已知人物与设定：\n{lines}")
_spec("outline_history", "前面的章节：\n{lines}")
_spec("outline_after", "之后已定的章节（要能衔接）：\n{lines}")
_spec("outline_omitted", "（更早的 {count} 章从略）", optional=("count",))
_spec("outline_title", "第{number}章 {title}", optional=("number",))
_spec("outline_synopsis", "：{synopsis}")
_spec("outline_character", "人物·{name}：{text}", optional=("text",))
_spec("outline_setting", "设定·{name}：{text}", optional=("text",))
_spec(
    "summary_ask",
    "为第{number}章《{title}》写前情提要：用几句话（不超过{summary_chars}字）概括本章发生的事，"
    "并列出出场人物（who）、地点（where）和时间（when）。",
    optional=("number", "title", "summary_chars"),
)
_spec("summary_text", "正文：\n{text}")
# ---------------------------------------------------------------------------------- memory extraction
_spec(
    "extract_system",
    "你是小说编辑的助手：从给出的章节正文中提取人物、情节事件、环境设定和重要对话，按要求的 JSON 格式输出。"
    "只写正文里确实发生的事；evidence 与 quote 必须从正文原样摘录（一句话以内）。",
)
_spec(
    "extract_ask",
    "【要求】提取本章新出现的人物和已知人物的变化（状态、位置、关系），主要事件（埋下的伏笔 thread=open，"
    "回收的伏笔 thread=closed），新的地点或设定，最多两句关键对话。evidence 必须是正文原句。",
)
_spec("extract_known", "已知人物与地点（已在记忆里的不要当作新人物）：{names}")
_spec("extract_heading", "{book}第{number}章 {title}", optional=("book", "number", "title"))
_spec("extract_text", "【正文】\n{text}")
# ---------------------------------------------------------------------------------- consistency judge
_spec("check_system", "你是小说校对，只依据给出的记忆检查正文的前后矛盾，按 JSON 格式输出。")
_spec(
    "check_ask",
    "【要求】列出正文与记忆矛盾之处（最多三条）：quote 为正文原句，problem 说明矛盾，"
    "entry 为相关人物名。没有矛盾就输出空列表。",
)
_spec("check_memory", "【记忆】\n{facts}")
_spec("check_no_memory", "（无）")
_spec("check_text", "【第{number}章正文】\n{text}", optional=("number",))

DEFAULTS: dict[str, str] = {key: spec[0] for key, spec in SPECS.items()}

#: The structured-output format line (``structured.schema_hint``); not overridable: it explains the
#: notation ``structured.schema_sketch`` writes, and ``with_schema_hint`` recognises it in a prompt.
JSON_HINT = (
    "只输出一个 JSON 对象，不要任何其他文字；格式（JSON Schema 简写：?=可省略的键，"
    "str≤N=至多N字，[≤N×…]=至多N项）：\n"
)


@dataclass(frozen=True)
class Prompts:
    """The templates in use: the defaults with a writer's overrides (``source`` says from where)."""

    overrides: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def text(self, key: str, **values: Any) -> str:
        """Template ``key`` filled with ``values`` (placeholders a template does not use are ignored).

        A ``title`` that already is a numbered heading (an imported ``第十一章 雨夜归人``) loses that heading
        when the template numbers the chapter itself, so the model never reads ``第1章 第十一章 雨夜归人``."""
        if "number" in values and isinstance(values.get("title"), str):
            values["title"] = bare_title(values["title"])
        return self.overrides.get(key, DEFAULTS[key]).format(**values)

    @classmethod
    def from_settings(cls, settings: Any) -> Prompts:
        """The prompts for ``settings`` (``writing.prompts_file``; empty: the defaults)."""
        name = getattr(getattr(settings, "writing", None), "prompts_file", "") if settings is not None else ""
        if not name:
            return DEFAULT_PROMPTS
        return load_file(Path(name).expanduser())


_HEADING = re.compile(r"^\s*第\s*[0-9０-９零〇一二两三四五六七八九十百千万]+\s*[章回节]\s*[:：、.．]?\s*")


def bare_title(title: str) -> str:
    """``第十一章 雨夜归人`` → ``雨夜归人``; a title that is only a heading, or none, stays as it is."""
    rest = _HEADING.sub("", title, count=1)
    return rest if rest.strip() else title


DEFAULT_PROMPTS = Prompts()
_cache: dict[Path, tuple[tuple[int, int], Prompts]] = {}
_cache_lock = threading.Lock()


def _error(message: str, path: Path, **kwargs: Any) -> XiaoshuoError:
    return XiaoshuoError(f"{message}（writing.prompts_file = {path}）", **kwargs)


def load_file(path: Path) -> Prompts:
    """Read and validate a prompts TOML file (see the module docstring); cached by size and mtime."""
    try:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns)
        with _cache_lock:
            hit = _cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        if st.st_size > 1 << 20:
            raise _error(
                "提示词文件过大 (the prompts file is too large)", path, expected="at most 1 MiB",
                received=f"{st.st_size} bytes", fix="只写要改的那几条提示词",
            )  # fmt: skip
        # a regular file only (never /dev/zero or a FIFO), read within the size just checked
        what = f"提示词文件 (prompts file)（writing.prompts_file = {path}）"
        raw = read_user_file(path, limit=1 << 20, key="1 MiB", what=what)
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise _error(
            "找不到提示词文件 (prompts file not found)", path,
            expected="an existing UTF-8 TOML file", received=str(path),
            fix="检查 writing.prompts_file 的路径（相对路径从当前目录算起），或设为空字符串用默认提示词",
        ) from None  # fmt: skip
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        # tomllib recurses per [ or {: a deeply nested file is not a TOML we take
        why = "TOML nested too deeply (嵌套太深)" if isinstance(exc, RecursionError) else str(exc)
        raise _error(
            "无法读取提示词文件 (cannot read the prompts file)", path,
            expected="a UTF-8 TOML file of key = \"text\" lines", received=why, fix="修正该行的语法",
        ) from None  # fmt: skip
    prompts = Prompts(validate(data, path), source=str(path))
    with _cache_lock:
        _cache[path] = (stamp, prompts)
    return prompts


def validate(data: dict[str, Any], path: Path | str = "<prompts>") -> dict[str, str]:
    """The overrides in ``data``, or a XiaoshuoError naming the first bad key."""
    path = Path(path)
    known = ", ".join(sorted(SPECS))
    out: dict[str, str] = {}
    for key, value in data.items():
        if key not in SPECS:
            import difflib

            close = difflib.get_close_matches(key, list(SPECS), n=1)
            raise _error(
                f"未知的提示词键 {key} (unknown prompt key {key!r})", path,
                expected=f"one of: {known}", received=key,
                fix=f"改成 {close[0]}" if close else "删除这一行，或改成上面列出的键之一",
            )  # fmt: skip
        if not isinstance(value, str) or not value.strip():
            raise _error(
                f"提示词 {key} 必须是非空文本 (prompt {key!r} must be non-empty text)", path,
                expected='key = "文本"', received=repr(value),
            )  # fmt: skip
        _, required, optional = SPECS[key]
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise _error(
                f"提示词 {key} 的花括号不配对 (unbalanced braces in prompt {key!r})", path,
                expected="{name} placeholders; literal braces written {{ and }}", received=str(exc),
            ) from None  # fmt: skip
        used = set()
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in required | optional or spec or conversion:
                allowed = ", ".join("{" + n + "}" for n in sorted(required | optional)) or "none"
                raise _error(
                    f"提示词 {key} 里有未知的占位符 {{{name}}} (unknown placeholder in prompt {key!r})", path,
                    expected=f"placeholders: {allowed} (plain {{name}}, no format spec)",
                    received="{" + name + (f"!{conversion}" if conversion else "")
                    + (f":{spec}" if spec else "") + "}",
                    fix="删掉它，或把字面的花括号写成 {{ 和 }}",
                )  # fmt: skip
            used.add(name)
        missing = sorted(required - used)
        if missing:
            raise _error(
                f"提示词 {key} 缺少占位符 (prompt {key!r} is missing placeholders)", path,
                expected=", ".join("{" + n + "}" for n in sorted(required)), received=value,
                fix="把 " + "、".join("{" + n + "}" for n in missing) + " 写进这条提示词",
            )  # fmt: skip
        out[key] = value
    return out


# ---------------------------------------------------------------------------------- the requests
def chapter_request(
    p: Prompts,
    *,
    number: int,
    title: str,
    target: int,
    want: int,
    have: int = 0,
    last: bool = False,
    first: bool | None = None,
) -> str:
    """One segment's 写作要求 while writing chapter ``number`` (``have``: 字 written so far; ``first``:
    the chapter's first segment, by default when nothing is written yet)."""
    key = "chapter_first" if (have == 0 if first is None else first) else "chapter_next"
    text = p.text(key, number=number, title=title, target=target, want=want, have=have)
    if last:
        text += p.text("chapter_last")
    return text + p.text("chapter_format")


def continue_request(p: Prompts, *, want: int, have: int = 0) -> str:
    """One segment's 写作要求 while continuing (续写) a chapter."""
    return p.text("continue", want=want, have=have)


def rewrite_request(
    p: Prompts, *, label: str, instruction: str, passage: str, target: int, have: int = 0, want: int = 0
) -> str:
    """One segment's 写作要求 while rewriting (改写/扩写/缩写, ``label``) ``passage``."""
    how = (instruction or "").strip() or p.text("rewrite_instruction")
    text = p.text("rewrite", label=label, instruction=how, passage=passage, target=target)
    if have:
        text += p.text("rewrite_more", have=have, want=want)
    return text + p.text("rewrite_format")


def plan_block(
    p: Prompts,
    *,
    number: int,
    title: str,
    volume: str = "",
    synopsis: str = "",
    characters: list[str] = (),  # type: ignore[assignment]
    places: list[str] = (),  # type: ignore[assignment]
    target: int | None = None,
) -> str:
    """The 【本章大纲】 of the chapter being written."""
    lines = [
        p.text(
            "plan_heading",
            number=number,
            title=title,
            volume=p.text("plan_volume", volume=volume) if volume else "",
        )
    ]
    if synopsis:
        lines.append(p.text("plan_synopsis", synopsis=synopsis))
    if characters:
        lines.append(p.text("plan_characters", names="、".join(characters)))
    if places:
        lines.append(p.text("plan_places", names="、".join(places)))
    if target:
        lines.append(p.text("plan_target", target=target))
    return "\n".join(lines)


def summary_line(
    p: Prompts,
    *,
    number: int,
    title: str,
    summary: str,
    who: list[str] = (),
    where: list[str] = (),
    when: str = "",  # type: ignore[assignment]
) -> str:
    """One earlier chapter under 【前情提要】, with a generated summary's who/where/when when present."""
    facts = [
        p.text(key, **{arg: value})
        for key, arg, value in (
            ("summary_who", "names", "、".join(who)),
            ("summary_where", "names", "、".join(where)),
            ("summary_when", "when", when.strip()),
        )
        if value
    ]
    line = p.text("summary_line", number=number, title=title, summary=summary)
    return line + (p.text("summary_facts", facts="；".join(facts)) if facts else "")


def next_line(p: Prompts, *, number: int, title: str, synopsis: str) -> str:
    """One following chapter under 【后续章节】."""
    return p.text("next_line", number=number, title=title, synopsis=synopsis)


def free_request(p: Prompts) -> str:
    """The request of a composition asked for with an empty one (随手写 continuing a story)."""
    return p.text("free_request")


def outline_ask(p: Prompts, *, first: int, last: int, synopsis_chars: int) -> str:
    return p.text(
        "outline_ask", first=first, last=last, count=last - first + 1, synopsis_chars=synopsis_chars
    )


def outline_messages(
    p: Prompts,
    *,
    card: str,
    ask: str,
    memory: list[str] = (),  # type: ignore[assignment]
    history: str = "",
    after: list[str] = (),  # type: ignore[assignment]
) -> list[dict[str, str]]:
    """One outline batch's prompt: the card, memory, earlier chapters, the ones after, the ask."""
    parts = [card]
    if memory:
        parts.append(p.text("outline_memory", lines="\n".join(memory)))
    if history:
        parts.append(p.text("outline_history", lines=history))
    if after:
        parts.append(p.text("outline_after", lines="\n".join(after)))
    parts.append(ask)
    return [{"role": "user", "content": "\n\n".join(parts)}]


def outline_line(p: Prompts, *, number: int, title: str, synopsis: str = "") -> str:
    """A planned chapter in an outline prompt (``synopsis`` '': the title only)."""
    line = p.text("outline_title", number=number, title=title)
    return line + (p.text("outline_synopsis", synopsis=synopsis) if synopsis else "")


def outline_memory_line(p: Prompts, *, kind: str, name: str, text: str) -> str:
    """A memory entry (``character`` or ``setting``) in an outline prompt."""
    return p.text(f"outline_{kind}", name=name, text=text)


def outline_omitted(p: Prompts, count: int) -> str:
    return p.text("outline_omitted", count=count)


def summary_ask(p: Prompts, *, number: int, title: str, summary_chars: int) -> str:
    return p.text("summary_ask", number=number, title=title, summary_chars=summary_chars)


def summary_messages(p: Prompts, *, card: str, ask: str, text: str | None) -> list[dict[str, str]]:
    """The summary prompt (``text=None``: the frame without the chapter, for budgeting)."""
    parts = [card] + ([p.text("summary_text", text=text)] if text is not None else []) + [ask]
    return [{"role": "user", "content": "\n\n".join(parts)}]


def extraction_messages(
    p: Prompts, *, book: str | None, number: int, title: str, text: str, known: list[str], hint: str
) -> list[dict[str, str]]:
    """The extraction prompt.  What every chapter shares comes first (system: the task and the form's
    shape ``hint``; then memory's names), the chapter last: vLLM's prefix cache computes the shared part
    once."""
    system = "\n".join([p.text("extract_system"), p.text("extract_ask"), hint])
    lines = []
    if known:
        lines.append(p.text("extract_known", names="、".join(known)))
    lines.append(p.text("extract_heading", book=f"《{book}》" if book else "", number=number, title=title))
    lines.append(p.text("extract_text", text=text))
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def check_messages(
    p: Prompts, *, number: int, facts: list[str], text: str, hint: str
) -> list[dict[str, str]]:
    """The consistency judge's prompt: the shared task and form first (a cached prefix on vLLM), memory,
    the text."""
    system = "\n".join([p.text("check_system"), p.text("check_ask"), hint])
    memory = "\n".join(facts) if facts else p.text("check_no_memory")
    user = "\n".join([p.text("check_memory", facts=memory), p.text("check_text", number=number, text=text)])
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def revise_request(
    p: Prompts,
    *,
    label: str,
    instructions: list[str],
    passage: str,
    after: str,
    target: int,
    have: int = 0,
    want: int = 0,
) -> str:
    """One segment's 写作要求 while revising (修改/扩写/缩写, ``label``) ``passage`` by the review's
    ``instructions`` (:func:`fix_instruction`), with the text that follows it (``after``) as context."""
    lines = "\n".join(f"{i}. {line}" for i, line in enumerate(instructions, 1))
    tail = p.text("revise_after", text=after) if after.strip() else ""
    text = p.text("revise", label=label, instructions=lines, passage=passage, after=tail, target=target)
    if have:
        text += p.text("rewrite_more", have=have, want=want)
    return text + p.text("rewrite_format")


def fix_instruction(p: Prompts, key: str, **values: Any) -> str:
    """The instruction that fixes one finding (``fix_*`` templates: ``repeated_within``, ``flavour`` …)."""
    return p.text(f"fix_{key}", **values)
