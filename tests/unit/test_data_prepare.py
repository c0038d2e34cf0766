"""`prepare` end to end on real files: every format, bad inputs, split, manifest, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.data import PrepareError, prepare, write_sample_corpus
from xiaoshuo.testing import TINY_CORPUS, run_cli


def _settings(tmp_path: Path, tiny_model: Path, **data):
    overrides = {"paths.data_dir": str(tmp_path / "data"), "data.tokenizer": str(tiny_model)}
    overrides.update({f"data.{k}": v for k, v in data.items()})
    return config.load(env={}, cwd=tmp_path, overrides=overrides)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _make_epub(path: Path) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("xiaoshuo-test")
    book.set_title("青云剑")
    book.add_author("示例作者")
    chapters = []
    for i, (title, body) in enumerate(
        [("第一章 雨夜", "夜色如墨。<br/>细雨敲打着青石板路。"), ("第二章 旧事", "十年前的大火。")]
    ):
        ch = epub.EpubHtml(title=title, file_name=f"c{i}.xhtml", lang="zh")
        ch.content = (
            f"<html><body><h1>{title}</h1><p>{body}</p><div><p>林远说：“走吧。”</p></div></body></html>"
        )
        book.add_item(ch)
        chapters.append(ch)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)


def test_sample_corpus_end_to_end(tmp_path: Path, tiny_model: Path) -> None:
    settings = _settings(tmp_path, tiny_model, chunk_size=256, sample_format="both", val_split=0.3)
    raw = settings.paths.raw_dir
    write_sample_corpus(raw)
    seen = []
    manifest = prepare(settings, progress=lambda name, done, total: seen.append((name, done, total)))
    assert seen[-1][1] == seen[-1][2] > 0  # progress reached the total
    by_path = {s["path"]: s for s in manifest["sources"]}
    assert {s["status"] for s in by_path.values()} == {"ok"}
    assert by_path["sample-都市-归途.txt"]["encoding"] == "gb18030"
    assert by_path["sample-仙侠-問道.txt"]["encoding"] == "big5hkscs"
    assert by_path["sample-科幻言情.json"]["encoding"] == "utf-16"
    assert by_path["sample-武侠-青云剑.txt"]["ad_lines_dropped"] == 2
    assert by_path["sample-都市-归途.txt"]["chapters"] == 3
    for record in by_path.values():
        for key in (
            "path",
            "sha256",
            "format",
            "encoding",
            "documents",
            "chapters",
            "characters",
            "samples",
            "status",
            "error",
        ):
            assert key in record
        assert len(record["sha256"]) == 64
    data_dir = settings.paths.data_dir
    train = _lines(data_dir / "train" / "continuation.jsonl")
    val = _lines(data_dir / "val" / "continuation.jsonl")
    assert train and val
    assert all(set(s) == {"text"} for s in train + val)
    joined = "\n".join(s["text"] for s in train + val)
    assert "笔趣阁" not in joined and "www." not in joined
    instr = _lines(data_dir / "train" / "instruction.jsonl")
    assert all([m["role"] for m in s["messages"]] == ["user", "assistant"] for s in instr)
    assert any("一章的开头" in s["messages"][0]["content"] for s in instr)
    assert any(s["messages"][0]["content"].startswith("请续写") for s in instr)
    on_disk = json.loads((data_dir / "prepared" / "manifest.json").read_text("utf-8"))
    assert on_disk["totals"]["train_samples"] == manifest["totals"]["train_samples"]
    assert on_disk["tokenizer"] == str(tiny_model)


def test_split_by_document_is_deterministic_and_leak_free(tmp_path: Path, tiny_model: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(10):
        (raw / f"book{i}.txt").write_text(f"第一章 书{i}\n" + f"这是第{i}本书独有的句子。\n" * 3, "utf-8")
    results = []
    for seed in (1, 1, 2):
        out = tmp_path / f"out-{len(results)}"
        settings = _settings(tmp_path, tiny_model, val_split=0.2, seed=seed)
        prepare(settings, input_dir=raw, output_dir=out)
        train = (out / "train" / "continuation.jsonl").read_text("utf-8")
        val = (out / "val" / "continuation.jsonl").read_text("utf-8")
        books_val = {i for i in range(10) if f"第{i}本书" in val}
        books_train = {i for i in range(10) if f"第{i}本书" in train}
        assert len(books_val) == 2 and books_val.isdisjoint(books_train)
        assert books_val | books_train == set(range(10))
        results.append(books_val)
    assert results[0] == results[1]  # same seed, same split


def test_bad_inputs_are_per_file_errors_and_good_files_survive(tmp_path: Path, tiny_model: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "good.txt").write_text(TINY_CORPUS, "utf-8")
    (raw / "good-gbk.txt").write_bytes(TINY_CORPUS.replace("林远", "陈默").encode("gbk"))
    _make_epub(raw / "book.epub")
    (raw / "empty.txt").write_bytes(b"")
    (raw / "blank.txt").write_text(" \n\u3000\n\t\n", "utf-8")
    (raw / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (raw / "truncated.json").write_text('[{"title": "a", "content": "第一章', "utf-8")
    (raw / "object.json").write_text('{"title": "a", "content": "b"}', "utf-8")
    (raw / "mixed.jsonl").write_text(
        '{"title": "甲", "content": "第一章 甲\\n甲的故事。"}\n{broken\n\n{"title": "乙"}\n'
        '{"title": "丙", "content": "丙的故事。"}\n',
        "utf-8",
    )
    (raw / "notes.docx").write_bytes(b"PK\x03\x04 not really")
    (raw / "russian.txt").write_bytes("Привет, как дела? Это русский текст для проверки.".encode("cp1251"))
    (raw / "dangling.txt").symlink_to(tmp_path / "missing-target.txt")
    (raw / ".DS_Store").write_bytes(b"\x00\x01")
    manifest = prepare(_settings(tmp_path, tiny_model), input_dir=raw, output_dir=tmp_path / "out")
    by_path = {s["path"]: s for s in manifest["sources"]}
    assert ".DS_Store" not in by_path
    ok = {p for p, s in by_path.items() if s["status"] == "ok"}
    assert ok == {"good.txt", "good-gbk.txt", "book.epub", "mixed.jsonl"}
    errors = {p: s["error"] for p, s in by_path.items() if s["status"] == "error"}
    assert "empty" in errors["empty.txt"]
    assert "whitespace" in errors["blank.txt"]
    assert "binary" in errors["binary.txt"]
    assert "truncated" in errors["truncated.json"]
    assert "must be a list" in errors["object.json"]
    assert "unsupported" in errors["notes.docx"] and ".epub" in errors["notes.docx"]
    assert "not a Chinese" in errors["russian.txt"]
    assert "cannot read" in errors["dangling.txt"]
    mixed = by_path["mixed.jsonl"]
    assert mixed["documents"] == 2
    assert "2 bad line(s) skipped: 2, 4" in mixed["warnings"][0]
    epub = by_path["book.epub"]
    assert epub["chapters"] == 2 and epub["documents"] == 1
    text = (tmp_path / "out" / "train" / "continuation.jsonl").read_text("utf-8")
    text += (tmp_path / "out" / "val" / "continuation.jsonl").read_text("utf-8")
    assert "细雨敲打着青石板路" in text and "陈默" in text and "丙的故事" in text
    assert manifest["totals"]["files_failed"] == 8


def test_duplicates_removed_and_counted(tmp_path: Path, tiny_model: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text(TINY_CORPUS, "utf-8")
    (raw / "b.txt").write_text(TINY_CORPUS, "utf-8")
    manifest = prepare(_settings(tmp_path, tiny_model), input_dir=raw, output_dir=tmp_path / "out")
    b = next(s for s in manifest["sources"] if s["path"] == "b.txt")
    assert b["samples"] == 0 and b["duplicates"] > 0 and b["status"] == "ok"
    assert manifest["totals"]["duplicates_removed"] == b["duplicates"]


def test_no_usable_source_fails_and_keeps_previous_outputs(tmp_path: Path, tiny_model: Path) -> None:
    settings = _settings(tmp_path, tiny_model)
    write_sample_corpus(settings.paths.raw_dir)
    prepare(settings)
    train = settings.paths.train_dir / "continuation.jsonl"
    before = train.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.txt").write_bytes(b"")
    with pytest.raises(PrepareError, match="no usable source") as info:
        prepare(settings, input_dir=bad)
    assert info.value.manifest["sources"][0]["status"] == "error"
    assert train.read_bytes() == before
    with pytest.raises(PrepareError, match="input folder not found"):
        prepare(settings, input_dir=tmp_path / "nope")


def test_switching_format_removes_stale_outputs(tmp_path: Path, tiny_model: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text(TINY_CORPUS, "utf-8")
    out = tmp_path / "out"
    prepare(_settings(tmp_path, tiny_model, sample_format="instruction"), input_dir=raw, output_dir=out)
    assert (out / "train" / "instruction.jsonl").exists()
    prepare(_settings(tmp_path, tiny_model), input_dir=raw, output_dir=out)
    assert not (out / "train" / "instruction.jsonl").exists()
    assert (out / "train" / "continuation.jsonl").exists()


def test_to_simplified(tmp_path: Path, tiny_model: Path) -> None:
    settings = _settings(tmp_path, tiny_model, to_simplified=True, val_split=0.0)
    write_sample_corpus(settings.paths.raw_dir)
    prepare(settings)
    text = (settings.paths.train_dir / "continuation.jsonl").read_text("utf-8")
    assert "顾长歌" in text and "顧長歌" not in text


def test_cli_sample_json_and_failure(tmp_path: Path, tiny_model: Path) -> None:
    out = run_cli(
        "prepare", "--sample", "--tokenizer", str(tiny_model), "--chunk-size", "512", "--json", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    assert manifest["totals"]["files_ok"] == 5
    assert (tmp_path / "data" / "train" / "continuation.jsonl").is_file()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_bytes(b"")
    bad = run_cli("prepare", "--input", "empty", "--tokenizer", str(tiny_model), cwd=tmp_path)
    assert bad.returncode == 2
    assert "no usable source" in bad.stderr and "Traceback" not in bad.stderr
    no_tok = run_cli("prepare", "--tokenizer", str(tmp_path / "nothing"), cwd=tmp_path)
    assert no_tok.returncode == 2 and "--tokenizer" in no_tok.stderr
