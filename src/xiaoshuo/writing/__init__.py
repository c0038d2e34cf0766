"""The book: novel projects, outline, chapters and versions, prompt texts (``writing.prompts``) and
``compose()`` (assembles and budgets them), chapter generation to a target length with a repetition
guard, and the use cases both frontends call (``writing.actions``).

    novels = Novels.from_settings(settings)
    novel = novels.create("yuye", title="雨夜剑", chapter_chars=3000)
    novel.import_outline({"volumes": [{"title": "第一卷", "chapters": [{"title": "夜雨", "synopsis": "…"}]}]})
    writer = Writer(settings, engine, novel, store=memory_store)
    result = run_sync(writer.write_chapter(1, candidates=2, seed=7))

No Gradio and no CLI code here: the CLI (``xiaoshuo novel|outline|write|chapter``) and the WebUI
call this package.  Importing it loads no torch, vllm or chromadb.
"""

from xiaoshuo.writing.compose import Composition, compose
from xiaoshuo.writing.generate import CandidateResult, Writer, WriteResult, run_sync
from xiaoshuo.writing.project import Novel, NovelLockedError, Novels
from xiaoshuo.writing.schema import ChapterPlan, NovelCard, Outline, Version, Volume, WritingError
from xiaoshuo.writing.structured import StructuredOutputError, generate_json, generate_json_many
from xiaoshuo.writing.textstats import count_chars, length_score, repetition_rate

__all__ = [
    "CandidateResult",
    "ChapterPlan",
    "Composition",
    "Novel",
    "NovelCard",
    "NovelLockedError",
    "Novels",
    "Outline",
    "StructuredOutputError",
    "Version",
    "Volume",
    "WriteResult",
    "Writer",
    "WritingError",
    "compose",
    "count_chars",
    "generate_json",
    "generate_json_many",
    "length_score",
    "repetition_rate",
    "run_sync",
]
