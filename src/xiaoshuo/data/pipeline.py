"""``prepare``: raw novel files → cleaned chapters → token chunks → train/val JSONL + manifest.

One file at a time (memory stays flat with corpus size): read and decode, clean,
split into chapters, chunk, build samples, drop exact duplicates, and append them
to a staging file on disk.  At the end whole source *documents* are assigned to
train or val (deterministic in the seed; one book never feeds both), the staging
files are streamed into ``train/<format>.jsonl`` and ``val/<format>.jsonl``, and
``prepared/manifest.json`` records every source (hash, format, encoding, counts,
status, error).  Outputs are replaced atomically; a failed run leaves the previous
outputs untouched.  One bad file never stops the batch.

This module orchestrates; readers, decoding, cleaning, structure and chunking
live in their own modules.  It does not train or touch the memory store.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings
from xiaoshuo.data.chunking import TokenCounter, load_tokenizer, pack, pieces_of
from xiaoshuo.data.cleaning import CleanOptions, CleanStats, clean_text
from xiaoshuo.data.readers import Chapter, Document, read_source
from xiaoshuo.data.structure import compile_chapter_regex, iter_paragraphs, split_chapters
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.files import atomic_write_json

MANIFEST_VERSION = 1
SIDECAR = "book.toml"  # a corpus file's card (title, genre, …), read by the compose samples
CONTINUE_PROMPT = "请续写下面的小说片段，保持人物、文风与情节连贯。\n\n{context}"
OPENING_PROMPT = "请为小说《{book}》写出「{title}」一章的开头。"
_TEMPLATE_MARGIN = 24  # chat-template tokens around two messages, with room to spare
# Never in data/train or data/val: U+FFFD, C0 controls but tab/newline, DEL, C1 controls.
_DAMAGED_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


class PrepareError(XiaoshuoError):
    """No source could be used; ``manifest`` holds the per-file errors."""

    def __init__(self, *args: Any, manifest: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.manifest = manifest
        super().__init__(*args, **kwargs)


@dataclass
class SourceRecord:
    path: str
    sha256: str = ""
    bytes: int = 0
    format: str = ""
    encoding: str = ""
    encoding_rule: str = ""  # the detection rule that chose ``encoding``, with its evidence
    documents: int = 0
    chapters: int = 0
    characters: int = 0
    samples: int = 0
    tokens: int = 0
    duplicates: int = 0
    ad_lines_dropped: int = 0
    damaged_lines_dropped: int = 0  # lines with U+FFFD or control characters, never trained on
    status: str = "ok"
    error: str = ""
    warnings: list[str] = field(default_factory=list)


ProgressFn = Callable[[str, int, int], None]  # (current file, bytes done, bytes total)


@dataclass
class _Run:
    """State of one prepare run (kept out of module globals)."""

    settings: Settings
    counter: TokenCounter
    formats: list[str]
    staging: dict[str, Any]
    compose: Any = None  # the compose-sample builder (``xiaoshuo.writing.compose_samples.ComposeSamples``)
    seen: set[bytes] = field(default_factory=set)
    doc_ids: list[str] = field(default_factory=list)
    doc_samples: dict[int, int] = field(default_factory=dict)


def prepare(
    settings: Settings,
    *,
    input_dir: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    compose: Any = None,
) -> dict[str, Any]:
    """Prepare every file under ``input_dir`` (default ``<data_dir>/raw``); return the manifest.

    ``compose`` builds the compose-shaped samples (``data.sample_format`` compose / both): a
    ``ComposeSamples`` from :mod:`xiaoshuo.writing.compose_samples`, which the caller passes because the
    writing code sits above this package.  Raises :class:`PrepareError` (with the manifest attached) when
    no source was usable.
    """
    started = time.perf_counter()
    data = settings.data
    input_path = Path(input_dir) if input_dir is not None else settings.paths.raw_dir
    out = Path(output_dir) if output_dir is not None else settings.paths.data_dir
    if not input_path.is_dir():
        raise PrepareError(
            "输入目录不存在 (input folder not found)",
            expected="a folder with .txt / .json / .jsonl / .epub novels",
            received=str(input_path),
            fix="把小说放进 data/raw/，或用 --input 指定目录，或用 --sample 生成示例数据",
        )
    chapter_re = compile_chapter_regex(data.chapter_regex)
    tokenizer_name = data.tokenizer or settings.model.base_model
    counter = TokenCounter(load_tokenizer(tokenizer_name, models_dir=settings.paths.models_dir))
    formats = _formats(data.sample_format, compose is not None)

    sources = list(_walk(input_path))
    total_bytes = sum(_size(p) for p in sources)
    staging_dir = out / "prepared" / f".staging-{os.getpid()}"
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir(parents=True)
    records: list[SourceRecord] = []
    try:
        run = _Run(
            settings,
            counter,
            formats,
            {f: (staging_dir / f"{f}.jsonl").open("w", encoding="utf-8") for f in formats},
            compose if "compose" in formats else None,
        )
        if run.compose is not None:
            run.compose.open(out)
        done = 0
        for path in sources:
            rel = path.relative_to(input_path).as_posix()
            if progress:
                progress(rel, done, total_bytes)
            records.append(_prepare_source(run, path, rel, chapter_re))
            done += _size(path)
        if progress:
            progress("", total_bytes, total_bytes)
        for fh in run.staging.values():
            fh.close()
        manifest = _manifest(settings, tokenizer_name, input_path, records, run)
        if run.compose is not None:
            manifest["compose"] = run.compose.report()
        elif data.sample_format == "both":
            manifest["compose"] = {"skipped": "no compose builder given (`xiaoshuo prepare` builds them)"}
        if not any(r.status == "ok" and r.samples for r in records):
            raise PrepareError(
                "没有可用的输入文件 (no usable source file)",
                expected="at least one readable novel file",
                received=_error_summary(records, input_path),
                fix="查看每个文件的错误信息；支持 .txt(UTF-8/GB18030/Big5)、.json、.jsonl、.epub",
                manifest=manifest,
            )
        val_docs = _choose_val_docs(run, data.val_split, data.seed)
        manifest["outputs"] = _write_splits(run, staging_dir, out, val_docs, manifest)
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        atomic_write_json(out / "prepared" / "manifest.json", manifest)
        return manifest
    finally:
        if compose is not None:
            compose.close()
        shutil.rmtree(staging_dir, ignore_errors=True)


def _formats(sample_format: str, can_compose: bool) -> list[str]:
    if sample_format == "compose" and not can_compose:
        raise PrepareError(
            "compose 样本需要写作模块 (compose samples need the writing code)",
            expected="prepare(settings, compose=ComposeSamples(settings)) — as `xiaoshuo prepare` does",
            received="no compose builder",
            fix="用 xiaoshuo prepare --format compose",
        )
    if sample_format == "both":
        return ["continuation", "instruction", "compose"] if can_compose else ["continuation", "instruction"]
    return [sample_format]


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and not _is_sidecar(name):
                yield Path(dirpath) / name


def _is_sidecar(name: str) -> bool:
    """``book.toml`` / ``<stem>.book.toml``: a book's card for compose samples, not a source."""
    return name == SIDECAR or name.endswith("." + SIDECAR)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _prepare_source(run: _Run, path: Path, rel: str, chapter_re) -> SourceRecord:
    record = SourceRecord(path=rel, format=path.suffix.lower().lstrip(".") or "(none)")
    try:
        record.bytes = _size(path)
        record.sha256 = _sha256(path) if path.is_file() else ""  # never read a FIFO or device
        result = read_source(path, rel, run.settings.limits)
    except XiaoshuoError as exc:
        record.status, record.error = "error", str(exc)
        return record
    except OSError as exc:
        record.status, record.error = "error", f"{rel}: 无法读取文件 (cannot read): {exc}"
        return record
    record.encoding = result.encoding
    record.encoding_rule = result.encoding_rule
    record.warnings = result.warnings
    data = run.settings.data
    options = CleanOptions(
        strip_indent=data.clean_strip_indent,
        drop_ads=data.clean_drop_ads,
        collapse_blank_lines=data.clean_collapse_blank_lines,
        to_simplified=data.to_simplified,
    )
    stats = CleanStats()
    for doc in result.documents:
        chapters = _chapters_of(doc, options, stats, chapter_re)
        if not chapters:
            record.warnings.append(f"{doc.title}: no text left after cleaning")
            continue
        record.documents += 1
        record.chapters += sum(1 for c in chapters if c.title)
        record.characters += sum(len(c.text) for c in chapters)
        doc_index = len(run.doc_ids)
        run.doc_ids.append(doc.doc_id)
        doc.title = _DAMAGED_CHARS.sub("", doc.title)  # the book title goes into instruction prompts
        for fmt in run.formats:
            for sample, tokens in _samples(run, doc, chapters, fmt, path):
                if _is_damaged(sample):  # cleaning drops such lines; this guards the invariant
                    record.warnings.append(f"{doc.title}: a sample with damaged characters skipped")
                    continue
                line = json.dumps(sample, ensure_ascii=False)
                key = hashlib.blake2b(f"{fmt}\0{line}".encode(), digest_size=16).digest()
                if key in run.seen:
                    record.duplicates += 1
                    continue
                run.seen.add(key)
                run.staging[fmt].write(f"{doc_index}\t{tokens}\t{line}\n")
                run.doc_samples[doc_index] = run.doc_samples.get(doc_index, 0) + 1
                record.samples += 1
                record.tokens += tokens
    record.ad_lines_dropped = stats.ad_lines_dropped
    record.damaged_lines_dropped = stats.damaged_lines_dropped
    if stats.damaged_lines_dropped:
        record.warnings.append(
            f"{stats.damaged_lines_dropped} damaged line(s) dropped (U+FFFD or control characters)"
        )
    if record.samples == 0 and record.duplicates:
        record.warnings.append("every sample duplicates one from an earlier file")
    elif record.samples == 0:
        record.status = "error"
        record.error = (
            record.error or f"{rel}: 没有产生任何样本 (no samples: the text is empty after cleaning)"
        )
    return record


def _chapters_of(doc: Document, options: CleanOptions, stats: CleanStats, chapter_re) -> list[Chapter]:
    if doc.chapters is not None:  # EPUB: chapters come from the spine
        cleaned = []
        for ch in doc.chapters:
            text = clean_text(ch.text, options, stats)
            if text.strip():
                cleaned.append(Chapter(title=clean_text(ch.title, options), text=text))
        return cleaned
    return split_chapters(clean_text(doc.text, options, stats), chapter_re)


def _samples(
    run: _Run, doc: Document, chapters: list[Chapter], fmt: str, path: Path
) -> Iterator[tuple[dict, int]]:
    data = run.settings.data
    counter = run.counter
    if fmt == "compose":
        yield from run.compose.samples(doc, chapters, counter, path)
        return
    if fmt == "continuation":
        for ch in chapters:
            paragraphs = ([ch.title] if ch.title else []) + list(iter_paragraphs(ch.text))
            pieces = pieces_of(paragraphs, counter, data.chunk_size)
            for chunk in pack(pieces, counter, data.chunk_size, data.chunk_overlap):
                yield {"text": chunk.text}, chunk.tokens
        return
    prompt_cost = counter.count(CONTINUE_PROMPT.format(context="")) + _TEMPLATE_MARGIN
    half = max(16, (data.chunk_size - prompt_cost) // 2)
    for ch in chapters:
        pieces = pieces_of(list(iter_paragraphs(ch.text)), counter, half)
        chunks = list(pack(pieces, counter, half, min(data.chunk_overlap, half // 2)))
        if not chunks:
            continue
        if ch.title:
            user = OPENING_PROMPT.format(book=doc.title, title=ch.title)
            yield _messages(user, chunks[0].text), counter.count(user) + chunks[0].tokens + _TEMPLATE_MARGIN
        for prev, nxt in itertools.pairwise(chunks):
            yield (
                _messages(CONTINUE_PROMPT.format(context=prev.text), nxt.text),
                prompt_cost + prev.tokens + nxt.tokens,
            )


def _is_damaged(sample: dict[str, Any]) -> bool:
    texts = [sample["text"]] if "text" in sample else [m["content"] for m in sample["messages"]]
    return any(_DAMAGED_CHARS.search(t) for t in texts)


def _messages(user: str, assistant: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def _choose_val_docs(run: _Run, val_split: float, seed: int) -> set[int]:
    """Whole documents go to val: the first ``round(n * val_split)`` in a seeded hash order."""
    docs = [i for i in range(len(run.doc_ids)) if run.doc_samples.get(i)]
    if val_split <= 0 or len(docs) < 2:
        return set()
    n_val = min(len(docs) - 1, max(1, round(len(docs) * val_split)))
    order = sorted(docs, key=lambda i: hashlib.sha256(f"{seed}\0{run.doc_ids[i]}".encode()).digest())
    return set(order[:n_val])


def _write_splits(
    run: _Run, staging_dir: Path, out: Path, val_docs: set[int], manifest: dict[str, Any]
) -> dict[str, Any]:
    outputs: dict[str, Any] = {"train": {}, "val": {}}
    totals = manifest["totals"]
    pending: list[tuple[Path, Path]] = []
    keep = _share_keep(run, staging_dir, val_docs)
    for fmt in run.formats:
        targets = {split: out / split / f"{fmt}.jsonl" for split in ("train", "val")}
        tmp = {split: p.with_name(f".{p.name}.tmp-{os.getpid()}") for split, p in targets.items()}
        counts = {"train": [0, 0], "val": [0, 0]}
        ratio, mixed_out = keep.get(fmt, 1.0), 0
        for p in tmp.values():
            p.parent.mkdir(parents=True, exist_ok=True)
        with (
            (staging_dir / f"{fmt}.jsonl").open(encoding="utf-8") as src,
            tmp["train"].open("w", encoding="utf-8") as train_fh,
            tmp["val"].open("w", encoding="utf-8") as val_fh,
        ):
            for raw in src:
                doc, tokens, line = raw.split("\t", 2)
                split = "val" if int(doc) in val_docs else "train"
                if split == "train" and ratio < 1.0 and _fraction(run.settings.data.seed, line) >= ratio:
                    mixed_out += 1
                    continue
                (val_fh if split == "val" else train_fh).write(line)
                counts[split][0] += 1
                counts[split][1] += int(tokens)
            train_fh.flush()
            os.fsync(train_fh.fileno())
            val_fh.flush()
            os.fsync(val_fh.fileno())
        for split in ("train", "val"):
            pending.append((tmp[split], targets[split]))
            outputs[split][fmt] = {
                "path": targets[split].relative_to(out).as_posix(),
                "samples": counts[split][0],
                "tokens": counts[split][1],
            }
            if split == "train" and fmt in keep:
                outputs[split][fmt]["left_out_for_compose_share"] = mixed_out
            totals[f"{split}_samples"] = totals.get(f"{split}_samples", 0) + counts[split][0]
            totals[f"{split}_tokens"] = totals.get(f"{split}_tokens", 0) + counts[split][1]
    _remove_stale_outputs(out, {t for _, t in pending})
    for tmp_path, target in pending:
        os.replace(tmp_path, target)
    totals["val_documents"] = len(val_docs)
    totals["train_documents"] = sum(1 for i in run.doc_samples if i not in val_docs)
    return outputs


def _share_keep(run: _Run, staging_dir: Path, val_docs: set[int]) -> dict[str, float]:
    """The share of train samples kept per format so that compose samples make up ``data.compose_share``
    of compose + continuation (the larger side is thinned; val keeps everything)."""
    if not {"compose", "continuation"} <= set(run.formats):
        return {}
    share = run.settings.data.compose_share
    counts = {}
    for fmt in ("compose", "continuation"):
        with (staging_dir / f"{fmt}.jsonl").open(encoding="utf-8") as fh:
            counts[fmt] = sum(1 for raw in fh if int(raw.split("\t", 1)[0]) not in val_docs)
    c, n = counts["compose"], counts["continuation"]
    if not c or not n:
        return {}
    if share >= 1 or share <= 0:
        return {"continuation" if share >= 1 else "compose": 0.0}
    if c / (c + n) > share:
        return {"compose": share * n / ((1 - share) * c)}
    return {"continuation": c * (1 - share) / (share * n)}


def _fraction(seed: int, line: str) -> float:
    """A stable number in [0, 1) for a sample (which samples the share keeps does not depend on order)."""
    digest = hashlib.blake2b(f"{seed}\0{line}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _remove_stale_outputs(out: Path, keep: set[Path]) -> None:
    """Outputs of an earlier run in another format would be read by train: remove them."""
    old = out / "prepared" / "manifest.json"
    try:
        previous = json.loads(old.read_text("utf-8"))
    except (OSError, ValueError):
        return
    for split in ("train", "val"):
        for entry in previous.get("outputs", {}).get(split, {}).values():
            path = out / entry.get("path", "")
            if path.is_file() and path not in keep:
                path.unlink()


def _manifest(
    settings: Settings, tokenizer: str, input_path: Path, records: list[SourceRecord], run: _Run
) -> dict[str, Any]:
    ok = [r for r in records if r.status == "ok"]
    return {
        "version": MANIFEST_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "input_dir": str(input_path),
        "tokenizer": tokenizer,
        "settings": settings.data.model_dump(mode="json"),
        "totals": {
            "files": len(records),
            "files_ok": len(ok),
            "files_failed": len(records) - len(ok),
            "documents": sum(r.documents for r in records),
            "chapters": sum(r.chapters for r in records),
            "characters": sum(r.characters for r in records),
            "samples": sum(r.samples for r in records),
            "tokens": sum(r.tokens for r in records),
            "duplicates_removed": sum(r.duplicates for r in records),
            "bytes": sum(r.bytes for r in records),
        },
        "sources": [asdict(r) for r in records],
    }


def _error_summary(records: list[SourceRecord], input_path: Path) -> str:
    if not records:
        return f"{input_path} 中没有文件 (no files in the input folder)"
    shown = "; ".join(r.error for r in records[:3] if r.error)
    more = f" (+{len(records) - 3} more)" if len(records) > 3 else ""
    return shown + more
