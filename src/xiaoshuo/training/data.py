"""Training data from ``prepare``'s outputs: find, check, tokenize, mask.

Reads ``<data>/train/*.jsonl``, ``<data>/val/*.jsonl`` and ``<data>/prepared/manifest.json``.
``{"text"}`` samples train on every token; ``{"messages"}`` samples train only on
the final assistant turn (the prompt — rendered with the tokenizer's chat
template up to the generation prompt — is masked with -100).  Works with any
chat template, no ``{% generation %}`` markers needed.  Samples longer than
``training.max_seq_length`` are truncated; samples left with no trainable token
are dropped and counted.

Everything here is checked *before* a model is loaded.  This module does not
train.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError


class TrainDataError(XiaoshuoError):
    """The training data is missing, empty or does not match the model."""


@dataclass
class DataFiles:
    root: Path
    train: list[Path]
    val: list[Path]
    manifest: dict[str, Any] | None
    manifest_sha256: str
    formats: set[str] = field(default_factory=set)


def find_data(data: Path) -> DataFiles:
    """Locate train/val JSONL under ``data`` (a prepare output folder, or a folder of .jsonl)."""
    if not data.is_dir():
        raise TrainDataError(
            "训练数据目录不存在 (training data folder not found)",
            expected="the folder `xiaoshuo prepare` wrote (with train/ and val/)",
            received=str(data),
            fix="先运行 xiaoshuo prepare，或用 --data 指定目录",
        )
    train_dir = data / "train" if (data / "train").is_dir() else data
    train = sorted(p for p in train_dir.glob("*.jsonl") if p.stat().st_size > 0)
    val = (
        sorted(p for p in (data / "val").glob("*.jsonl") if p.stat().st_size > 0)
        if (data / "val").is_dir()
        else []
    )
    if not train:
        raise TrainDataError(
            "没有训练样本 (no training samples)",
            expected="non-empty *.jsonl files in train/",
            received=str(train_dir),
            fix="先运行 xiaoshuo prepare（把小说放进 data/raw/）",
        )
    manifest_path = data / "prepared" / "manifest.json"
    manifest, digest = None, ""
    if manifest_path.is_file():
        raw = manifest_path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        try:
            manifest = json.loads(raw)
        except ValueError:
            raise TrainDataError(
                "manifest.json 已损坏 (corrupt manifest)",
                received=str(manifest_path),
                fix="重新运行 xiaoshuo prepare",
            ) from None
    else:
        digest = _hash_files(train + val)
    return DataFiles(data, train, val, manifest, digest)


def _hash_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with p.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def check_tokenizer_matches(files: DataFiles, base_model: str) -> None:
    """Refuse data chunked with another model's tokenizer (chunk sizes would be wrong)."""
    if not files.manifest:
        return
    used = str(files.manifest.get("tokenizer", ""))
    if not used:
        return
    same = used == base_model or (
        Path(used).expanduser().exists()
        and Path(base_model).expanduser().exists()
        and Path(used).expanduser().resolve() == Path(base_model).expanduser().resolve()
    )
    if not same:
        raise TrainDataError(
            "训练数据是用另一个分词器准备的 (data was prepared with a different tokenizer)",
            expected=f"data prepared with the base model's tokenizer ({base_model})",
            received=f"manifest tokenizer: {used}",
            fix=f"重新运行 xiaoshuo prepare --tokenizer {base_model}",
        )


def read_samples(paths: list[Path]) -> list[dict[str, Any]]:
    samples = []
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    raise TrainDataError(
                        f"训练数据第 {lineno} 行不是合法 JSON (invalid JSON line)",
                        received=f"{path}:{lineno}",
                        fix="重新运行 xiaoshuo prepare",
                    ) from None
                if not (isinstance(obj.get("text"), str) or isinstance(obj.get("messages"), list)):
                    raise TrainDataError(
                        "训练样本格式不对 (unknown sample format)",
                        expected='{"text": ...} or {"messages": [...]}',
                        received=f"{path}:{lineno}: keys {sorted(obj)}",
                    )
                samples.append(obj)
    return samples


def tokenize(
    samples: list[dict[str, Any]], tokenizer: Any, max_len: int
) -> tuple[list[dict[str, list[int]]], int]:
    """Samples → ``{"input_ids", "labels"}`` rows; returns (rows, dropped)."""
    eos = tokenizer.eos_token_id
    rows, dropped = [], 0
    for sample in samples:
        if "text" in sample:
            ids = tokenizer(sample["text"], add_special_tokens=False)["input_ids"]
            if eos is not None:
                ids = [*ids, eos]
            labels = list(ids)
        else:
            prompt_ids, completion_ids = _chat_ids(sample["messages"], tokenizer)
            ids = prompt_ids + completion_ids
            labels = [-100] * len(prompt_ids) + completion_ids
        ids, labels = ids[:max_len], labels[:max_len]
        if len(ids) < 2 or all(t == -100 for t in labels[1:]):
            dropped += 1
            continue
        rows.append({"input_ids": ids, "labels": labels})
    return rows, dropped


def _chat_ids(messages: list[dict[str, str]], tokenizer: Any) -> tuple[list[int], list[int]]:
    if not messages or messages[-1].get("role") != "assistant":
        raise TrainDataError(
            "messages 样本必须以 assistant 结尾 (must end with an assistant turn)",
            received=[m.get("role") for m in messages],
        )
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise TrainDataError(
            "对话模板无法切分出助手回复 (chat template does not extend the prompt)",
            expected="template(messages) to start with template(messages[:-1], add_generation_prompt=True)",
            received=str(getattr(tokenizer, "name_or_path", "?")),
        )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return prompt_ids, completion_ids
