"""Typed settings for xiaoshuo and the one place they are loaded.

``load()`` merges, in order of increasing priority::

    defaults  ←  config.toml  ←  XIAOSHUO_<SECTION>__<KEY> environment  ←  CLI flags

and remembers where every value came from (``Settings.source_of``), so
``xiaoshuo config`` can show it.  The dotted key names follow the seed's
``config.py`` (``model.base_model``, ``training.learning_rate`` …).

This module only reads and validates settings.  It does not create folders,
download models or touch the GPU; importing it reads nothing from disk or env.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from xiaoshuo.errors import ConfigError
from xiaoshuo.model_names import MODEL_KEYS, resolve

log = logging.getLogger(__name__)

ENV_PREFIX = "XIAOSHUO_"
ENV_CONFIG_FILE = "XIAOSHUO_CONFIG"
#: ``XIAOSHUO_*`` variables that are read but are not ``XIAOSHUO_<SECTION>__<KEY>`` settings.
ENV_NOT_KEYS = frozenset({ENV_CONFIG_FILE})
DEFAULT_CONFIG_FILE = "config.toml"
#: Keys holding a URL: validated as http(s) URLs; a user name, password or token inside one is a secret
#: (masked by :meth:`Settings.to_plain`, the 设置 page and ``xiaoshuo config``).
URL_KEYS = ("model.hf_endpoint", "engine.openai_base_url", "memory.chroma_url")
#: Query parameters whose values are masked in a shown URL (``?api_key=…``, ``?token=…`` …).
_SECRET_QUERY = re.compile(r"(?i)(^|[&;])([^=&;]*(?:key|token|secret|pass|auth|sig|cred)[^=&;]*)=([^&;]*)")


def mask_url(url: str) -> str:
    """``url`` with its credentials as ``***``: the user-info part and secret-looking query values."""
    if not url or ("@" not in url and "?" not in url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}=***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _check_url(value: str, *, allow_empty: bool) -> str:
    """An ``http(s)://host[:port][/path]`` URL (stripped), or empty where that is allowed."""
    value = value.strip()
    if not value and allow_empty:
        return value
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port that is not a number in 0–65535
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc}); write it as http://host:port/path") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host; write it as http://host:port/path")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("a URL may not contain spaces or control characters")
    if port == 0:
        raise ValueError("port 0 is not a port one can connect to")
    return value

DEFAULT_SYSTEM_PROMPT = (
    "你是一位经验丰富的中文小说作家。请根据提供的设定、人物与前文，"
    "以自然流畅、细节丰富的中文续写故事，保持人物性格与文风一致，不要复述提示。"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ModelSettings(_Section):
    """The base model, LoRA shape and vLLM engine limits (seed: ``model.*``)."""

    base_model: str = Field(
        "auto",
        min_length=1,
        description="Base model: a hub id, a local folder with config.json, or auto (Qwen2.5-7B-Instruct "
        "on a GPU with >= 16 GB, 3B on 8-16 GB, 1.5B on CPU). A hub id pulled into paths.models_dir "
        "is used from there.",
    )
    source: Literal["auto", "hf", "modelscope"] = Field(
        "auto",
        description="Where `xiaoshuo model pull` downloads from: hf (Hugging Face or the hf_endpoint "
        "mirror), modelscope (魔搭), or auto (the first of hf, modelscope that answers).",
    )
    hf_endpoint: str = Field(
        "",
        description="Hugging Face mirror for downloads, e.g. https://hf-mirror.com; empty = $HF_ENDPOINT "
        "or https://huggingface.co.",
    )
    load_in_4bit: bool = Field(True, description="QLoRA: load the base model in 4-bit (nf4) for training.")
    lora_r: int = Field(64, ge=1, le=1024, description="LoRA rank r.")
    lora_alpha: int = Field(128, ge=1, description="LoRA alpha (scaling = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    lora_target_modules: list[str] = Field(
        default_factory=lambda: ["all-linear"],
        min_length=1,
        description='Modules to adapt; ["all-linear"] means every linear projection.',
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights dtype for inference (auto: bf16 on GPU/CPU with bf16, else fp32)."
    )
    vllm_max_model_len: int = Field(
        32768, ge=128, description="vLLM max context length in tokens (prompt + output)."
    )
    vllm_gpu_memory_utilization: float = Field(
        0.85, gt=0.0, le=1.0, description="Share of GPU memory vLLM may take (0–1]."
    )

    @field_validator("hf_endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, allow_empty=True)


class EngineSettings(_Section):
    """Which generation backend to use and how to reach or size it."""

    backend: Literal["auto", "vllm", "openai", "transformers", "llamacpp"] = Field(
        "auto",
        description="auto: llamacpp for a .gguf model or on a CPU without vLLM (when installed), else vLLM "
        "when importable and usable here, else transformers; openai: a remote OpenAI-compatible server "
        "(vllm serve); llamacpp: llama.cpp on a GGUF file (pip install -e '.[llamacpp]').",
    )
    openai_base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="Base URL of the OpenAI-compatible server."
    )
    openai_api_key: SecretStr = Field(
        SecretStr("EMPTY"), description="API key for the OpenAI-compatible server."
    )
    cpu_kv_cache_gib: int = Field(
        4, ge=1, description="vLLM on CPU: KV-cache size in whole GiB (VLLM_CPU_KVCACHE_SPACE)."
    )
    max_lora_rank: int = Field(64, ge=1, description="vLLM: largest LoRA rank that can be loaded.")
    max_loras: int = Field(
        2, ge=1, description="vLLM: adapters resident at once (more are swapped in as needed)."
    )
    enforce_eager: bool = Field(False, description="vLLM: disable CUDA graphs (saves memory).")
    enable_lora: bool = Field(
        False,
        description="vLLM: start in LoRA mode even without adapters, so adapters can be added later "
        "(costs ~17% speed on CPU).",
    )
    merge_adapter: Literal["auto", "always", "never"] = Field(
        "auto",
        description="vLLM: serve a single adapter merged into the base weights (cached under "
        "paths.models_dir/merged); auto: on CPU only (LoRA mode costs 55-65% speed there), always, never.",
    )
    prefix_caching: bool = Field(
        True,
        description="vLLM: reuse the KV cache of a prompt's shared beginning (the segments of a chapter).",
    )
    openai_model: str = Field(
        "", description="Served model name on the OpenAI-compatible server; empty = its first model."
    )
    llamacpp_threads: int = Field(
        0, ge=0, description="llamacpp: CPU threads for generation and prefill; 0 = every core."
    )
    llamacpp_gpu_layers: int = Field(
        -1,
        ge=-1,
        description="llamacpp: layers offloaded to a GPU when llama.cpp was built with one (Metal, CUDA); "
        "-1 = all, 0 = CPU only.",
    )
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt for chat-style generation.")

    @field_validator("openai_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, allow_empty=False)


class GenerationSettings(_Section):
    """Default sampling for fiction; every request may override them."""

    temperature: float = Field(0.8, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="Nucleus sampling top-p (0–1].")
    top_k: int = Field(50, ge=-1, description="Top-k sampling; -1 or 0 turns it off.")
    repetition_penalty: float = Field(1.05, gt=0.0, description="Repetition penalty (1 = off).")
    max_tokens: int = Field(1024, ge=1, description="Longest continuation, in tokens.")


class TrainingSettings(_Section):
    """LoRA / QLoRA fine-tuning (seed: ``training.*``)."""

    num_train_epochs: float = Field(3, gt=0, description="Training epochs.")
    per_device_train_batch_size: int = Field(2, ge=1, description="Batch size per device.")
    gradient_accumulation_steps: int = Field(8, ge=1, description="Gradient accumulation steps.")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="Peak learning rate.")
    max_seq_length: int = Field(2048, ge=16, description="Longest training sample, in tokens.")
    gradient_checkpointing: bool = Field(
        True, description="Trade compute for memory (recompute activations)."
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of steps used for LR warm-up.")
    logging_steps: int = Field(10, ge=1, description="Log loss every N optimizer steps.")
    eval_steps: int = Field(100, ge=1, description="Evaluate on the val split every N steps.")
    save_steps: int = Field(100, ge=1, description="Save a checkpoint every N steps.")
    seed: int = Field(42, description="Random seed for training.")
    eval_style: bool = Field(
        False,
        description="After training, run the style eval (xiaoshuo eval style) on the val split and store "
        "the result in the adapter's manifest (style_eval).",
    )


class DataSettings(_Section):
    """Corpus preparation (``xiaoshuo prepare``)."""

    chunk_size: int = Field(2048, ge=32, description="Longest training sample, in tokens.")
    chunk_overlap: int = Field(
        0, ge=0, description="Tokens of trailing context repeated at the start of the next chunk."
    )
    sample_format: Literal["continuation", "instruction", "compose", "both"] = Field(
        "continuation",
        description="continuation: {text} for causal LM; instruction: chat {messages} (续写 / chapter "
        "openings); compose: each chapter as the prompt compose() builds to write it (card, plan, "
        "前情提要, memory, recent text, length) with the chapter as the answer; both: all three.",
    )
    compose_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="With both: the share of compose samples among compose + continuation train samples "
        "(the larger side is thinned; val keeps all); 0.5 measured best in bench/bench_style_formats.py.",
    )
    tokenizer: str = Field(
        "",
        description="Tokenizer that counts tokens (path or hub id); empty = model.base_model; "
        '"builtin-tiny" = the offline test tokenizer.',
    )
    val_split: float = Field(0.1, ge=0.0, lt=1.0, description="Share of source documents for val.")
    seed: int = Field(42, description="Seed of the train/val split.")
    to_simplified: bool = Field(False, description="Convert 繁体 to 简体 with OpenCC.")
    chapter_regex: str = Field(
        "", description="Custom chapter-heading regex; empty uses the built-in patterns."
    )
    clean_strip_indent: bool = Field(
        True, description="Strip leading (full-width) indentation and trailing spaces."
    )
    clean_drop_ads: bool = Field(
        True, description="Drop site banners, ads and URL lines of downloaded web novels."
    )
    clean_collapse_blank_lines: bool = Field(True, description="Collapse runs of blank lines.")


class MemorySettings(_Section):
    """Story memory in ChromaDB (seed: ``memory.*``)."""

    embedding_model: str = Field(
        "auto",
        min_length=1,
        description='Embedding model (hub id or local path); "none" turns dense retrieval off; '
        "auto: BAAI/bge-m3 on a GPU with >= 8 GB, BAAI/bge-small-zh-v1.5 otherwise.",
    )
    max_memory_items: int = Field(1000, ge=1, description="Most active memory entries per novel.")
    overflow_policy: Literal["reject", "archive_plot"] = Field(
        "reject",
        description="When a novel is full: reject the add, or archive the least important unpinned plot "
        "entries.",
    )
    chroma_url: str = Field(
        "", description="Chroma server URL (http://host:8000); empty uses the embedded store."
    )
    top_k: int = Field(8, ge=1, description="Memory entries retrieved per request.")
    context_token_budget: int = Field(2048, ge=0, description="Tokens of memory allowed into one prompt.")

    @field_validator("chroma_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, allow_empty=True)


class WritingSettings(_Section):
    """Writing a book: chapter length, segments, prompt budget, repetition guard (``xiaoshuo.writing``)."""

    chapter_chars: int = Field(
        3000, ge=50, le=200_000, description="Default chapter length in 字 (non-whitespace characters)."
    )
    length_tolerance: float = Field(
        0.10, gt=0.0, lt=1.0, description="A chapter is done within ±this share of its target length."
    )
    segment_chars: int = Field(
        1200, ge=50, le=20_000, description="Most 字 generated per segment before the prompt is recomposed."
    )
    max_segments: int = Field(60, ge=1, description="Hard cap on segments per chapter (a runaway guard).")
    tail_chars: int = Field(
        2500, ge=0, description="Most characters of the preceding text put into a prompt (its tail)."
    )
    recent_summaries: int = Field(5, ge=0, description="Summaries (前情提要) of this many earlier chapters.")
    next_synopses: int = Field(3, ge=0, description="Synopses of this many following chapters (伏笔).")
    prompt_budget: int = Field(
        0, ge=0, description="Most prompt tokens; 0 = the model's context minus the segment's max tokens."
    )
    repetition_ngram: int = Field(8, ge=2, le=64, description="Repetition guard: n-gram length in 字.")
    repetition_threshold: float = Field(
        0.3, gt=0.0, le=1.0, description="Repetition guard: regenerate a segment above this repeated share."
    )
    repetition_retries: int = Field(
        2, ge=0, le=10, description="Repetition guard: regenerations per segment."
    )
    repetition_chapters: int = Field(
        3, ge=0, description="Repetition guard: also compare with this many previous chapters."
    )
    auto_summarize: bool = Field(
        False,
        description="Summarise a chapter (前情提要 + who/where/when) when it is accepted: one more model "
        "call per accept (`chapter accept` then loads the model).",
    )
    summary_chars: int = Field(300, ge=20, le=2000, description="Most 字 of a generated chapter summary.")
    outline_batch: int = Field(
        10, ge=1, le=50, description="Chapters planned per request by `outline generate`."
    )
    outline_synopsis_chars: int = Field(
        200, ge=10, le=2000, description="Most 字 of a generated chapter synopsis (要点)."
    )
    structured_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Further tries, each with a new seed (derived from --seed when given), of an outline "
        "batch, a summary or a memory-extraction form whose answer does not fit its form.",
    )
    auto_approve: bool = Field(
        False, description="Extracted memory proposals go to memory without review (else: the review queue)."
    )
    auto_extract: bool = Field(
        False,
        description="Extract memory proposals from a chapter when it is accepted: one more model call per "
        "accept (`chapter accept` then loads the model).",
    )
    thread_window: int = Field(
        3, ge=0, description="Prompts remind of open threads (伏笔) due within this many chapters."
    )
    flow_summarize: bool = Field(
        True,
        description="When a chapter's text changes (accept, edit, revert, set, import), its summary "
        "(前情提要) becomes pending work: writing.auto_summarize refreshes it at once when a model is "
        "loaded, else `xiaoshuo novel resync` does.",
    )
    flow_extract: bool = Field(
        True,
        description="When a chapter's text changes, a new memory extraction becomes pending work: it "
        "supersedes the chapter's unreviewed proposals (writing.auto_extract at once, else `novel resync`).",
    )
    flow_stale: bool = Field(
        True,
        description="When a chapter's text changes, mark every later chapter whose prompt used its summary, "
        "its ending or a memory entry from it as stale, with the reason (`novel status`); stale chapters "
        "are never rewritten automatically.",
    )
    resync_batch: int = Field(
        16, ge=1, le=256, description="Chapters `novel resync` sends to the engine at once (one batch)."
    )
    reappear_gap: int = Field(
        20, ge=1, description="Consistency check: flag a character unseen for this many chapters."
    )
    prompts_file: str = Field(
        "",
        description="TOML file overriding prompt texts (keys of xiaoshuo.writing.prompts, e.g. "
        "chapter_format); empty = the built-in texts.",
    )


class EvalSettings(_Section):
    """Measuring the writing: ``xiaoshuo eval`` (``xiaoshuo.eval``)."""

    ai_flavour_file: str = Field(
        "",
        description="Your own AI味 phrase list (TOML, the format of the shipped "
        "xiaoshuo/eval/data/ai_flavour.toml), added to the shipped one; empty: the shipped list only.",
    )


class WebUISettings(_Section):
    """The Gradio WebUI (seed: ``webui.*``; host defaults to loopback for safety)."""

    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address to bind. 0.0.0.0 exposes the UI to the network (needs auth).",
    )
    port: int = Field(7860, ge=1, le=65535, description="Port to listen on.")
    share: bool = Field(False, description="Create a public Gradio share link (needs auth).")
    language: Literal["zh", "en"] = Field("zh", description="Interface language: \"zh\" or \"en\".")


class PathSettings(_Section):
    """Runtime folders (seed layout); relative paths are relative to the working directory."""

    data_dir: Path = Field(Path("data"), description="Holds raw/, train/, val/, prepared/ and chroma_db/.")
    checkpoints_dir: Path = Field(Path("checkpoints"), description="Training runs and adapters.")
    logs_dir: Path = Field(Path("logs"), description="Event logs (train-<run>.jsonl …).")
    models_dir: Path = Field(Path("models"), description="Local model weights.")

    @field_validator("data_dir", "checkpoints_dir", "logs_dir", "models_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError('an empty path would silently mean the current folder; write "." for that')
        return value

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def train_dir(self) -> Path:
        return self.data_dir / "train"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma_db"


class LimitSettings(_Section):
    """Bounds on what xiaoshuo reads from files a user names (imports, prepare inputs, ``--file``)."""

    max_file_mb: int = Field(
        128,
        ge=1,
        description="Largest text or JSON file read: a book for novel import / prepare, an outline or "
        "memory import (MB).",
    )
    max_chapter_file_mb: int = Field(
        16, ge=1, description="Largest text read by `chapter set --file` (a file or stdin, MB)."
    )
    max_zip_entry_mb: int = Field(
        128, ge=1, description="EPUB/DOCX/zip: largest decompressed size of one entry (MB)."
    )
    max_zip_total_mb: int = Field(
        512, ge=1, description="EPUB/DOCX/zip: largest decompressed size of all entries together (MB)."
    )
    max_zip_ratio: int = Field(
        100,
        ge=2,
        description="EPUB/DOCX/zip: highest compression ratio (decompressed / compressed) of an entry "
        "over 1 MB; a zip bomb is far above.",
    )
    max_zip_entries: int = Field(50_000, ge=1, description="EPUB/DOCX/zip: most entries in one archive.")


class Settings(BaseModel):
    """All settings.  Immutable: derive a changed copy with :func:`load` overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelSettings = Field(default_factory=ModelSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    writing: WritingSettings = Field(default_factory=WritingSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    webui: WebUISettings = Field(default_factory=WebUISettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _config_file: Path | None = PrivateAttr(default=None)
    _notes: dict[str, str] = PrivateAttr(default_factory=dict)

    def note_of(self, key: str) -> str | None:
        """How a model key was resolved (``auto`` → which model and why; pulled → which folder)."""
        _check_key(key)
        return self._notes.get(key)

    def source_of(self, key: str) -> str:
        """Where the value of dotted ``key`` came from: default, config.toml, env or cli."""
        _check_key(key)
        return self._sources.get(key, "default")

    @property
    def config_file(self) -> Path | None:
        """The config.toml that was read, if any."""
        return self._config_file

    def get(self, key: str) -> Any:
        """Value of a dotted key such as ``"training.learning_rate"``."""
        section, name = _check_key(key)
        return getattr(getattr(self, section), name)

    def items(self) -> list[tuple[str, Any, str, str]]:
        """``(key, value, source, description)`` for every key, in declaration order."""
        rows = []
        for section, fields in all_keys().items():
            for name, description in fields.items():
                key = f"{section}.{name}"
                rows.append((key, self.get(key), self.source_of(key), description))
        return rows

    def to_plain(self, *, reveal_secrets: bool = False) -> dict[str, dict[str, Any]]:
        """Nested JSON-ready dict (secrets masked unless asked)."""
        data = self.model_dump(mode="json")
        if reveal_secrets:
            data["engine"]["openai_api_key"] = self.engine.openai_api_key.get_secret_value()
        else:
            for key in URL_KEYS:
                section, name = key.split(".")
                data[section][name] = mask_url(data[section][name])
        return data


@lru_cache(maxsize=1)
def all_keys() -> dict[str, dict[str, str]]:
    """``{section: {key: description}}`` for every setting."""
    out: dict[str, dict[str, str]] = {}
    for section, field in Settings.model_fields.items():
        cls = field.annotation
        out[section] = {
            name: (f.description or "")
            for name, f in cls.model_fields.items()  # type: ignore[union-attr]
        }
    return out


def load(
    config_file: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    override_source: str = "cli",
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Settings:
    """Load settings: defaults ← config.toml ← ``XIAOSHUO_*`` env ← ``overrides``.

    ``config_file``: explicit path (``--config``); otherwise ``$XIAOSHUO_CONFIG``;
    otherwise ``config.toml`` in ``cwd`` when it exists.  ``overrides`` maps dotted
    keys to values (CLI flags).  ``env`` defaults to ``os.environ``.
    Raises :class:`ConfigError` naming the key, the value and the allowed form.
    """
    env = os.environ if env is None else env
    merged: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}

    path = _find_config_file(config_file, env, Path(cwd) if cwd else Path.cwd())
    if path is not None:
        label = f"config.toml ({path})"
        for key, value in _read_toml(path).items():
            _put(merged, sources, key, value, label)

    for key, value, var in _env_overrides(env):
        _put(merged, sources, key, value, f"env {var}")

    for key, value in (overrides or {}).items():
        _check_key(key)
        _put(merged, sources, key, value, override_source)

    try:
        settings = Settings.model_validate(merged)
        notes = _resolve_models(settings, merged)
        if notes:
            settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise _to_config_error(exc, merged, sources) from None
    _check_dirs(settings, sources, Path(cwd) if cwd else None)
    settings._sources = sources
    settings._config_file = path
    settings._notes = notes
    return settings


def _resolve_models(settings: Settings, merged: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``auto`` → the hardware's model; a hub id pulled under ``paths.models_dir`` → that folder.

    The only hardware fact used is ``nvidia-smi``'s GPU memory (no torch), asked once per process.
    The resolver is :func:`xiaoshuo.model_names.resolve`, the same one every ``--model`` flag uses.
    """
    notes = {}
    for key in MODEL_KEYS:
        value, note = resolve(key, settings.get(key), settings.paths.models_dir)
        if note:
            section, name = key.split(".")
            merged.setdefault(section, {})[name] = value
            notes[key] = note
    return notes


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a ``--set key=value`` flag; the value is JSON when it parses, else a string."""
    if "=" not in text:
        raise ConfigError(
            "无法解析 --set 参数 (cannot parse --set)",
            expected="key=value, e.g. training.learning_rate=1e-4",
            received=text,
            fix="写成 section.key=value 的形式",
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    _check_key(key)
    return key, _parse_scalar(raw.strip())


def _find_config_file(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str], cwd: Path
) -> Path | None:
    if explicit is not None or env.get(ENV_CONFIG_FILE):
        origin = "--config" if explicit is not None else ENV_CONFIG_FILE
        path = Path(explicit if explicit is not None else env[ENV_CONFIG_FILE]).expanduser()
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            raise ConfigError(
                f"找不到配置文件 (config file not found, from {origin})",
                expected="an existing TOML file",
                received=str(path),
                fix="检查路径，或去掉该参数以使用默认配置",
            )
        return path
    default = cwd / DEFAULT_CONFIG_FILE
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:  # tomllib recurses per nested [ or {
        raise ConfigError(
            f"配置文件不是合法的 TOML (invalid TOML in {path})",
            expected="TOML with [section] tables, e.g. [training] learning_rate = 1e-4",
            received="TOML nested too deeply (嵌套太深)" if isinstance(exc, RecursionError) else str(exc),
            fix="修正该行的语法",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"无法读取配置文件 (cannot read {path})",
            expected="a readable UTF-8 TOML file",
            received=str(exc),
            fix="检查文件权限与编码",
        ) from None
    flat: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            _check_key(section)  # a bare top-level key is never a known dotted key: this raises
        for name, value in table.items():
            key = f"{section}.{name}"
            _check_key(key, where=str(path))
            flat[key] = value
    return flat


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, Any, str]]:
    found = []
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in ENV_NOT_KEYS:
            continue
        if "__" not in var:  # XIAOSHUO_WEBUI_PORT: a typo that would otherwise do nothing, silently
            _warn_unknown_env(var)
            continue
        section, _, name = var[len(ENV_PREFIX) :].partition("__")
        key = f"{section.lower()}.{name.lower()}"
        _check_key(key, where=f"environment variable {var}")
        found.append((key, _parse_scalar(env[var]), var))
    return found


def _warn_unknown_env(var: str) -> None:
    """Log that ``var`` sets nothing and what it probably meant (never its value: it may be a secret)."""
    known = [
        f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
        for section, fields in all_keys().items()
        for name in fields
    ]
    close = difflib.get_close_matches(var.upper(), known, n=1, cutoff=0.8)
    hint = (
        f"是否想写 (did you mean) {close[0]}？"
        if close
        else f"设置项写作 {ENV_PREFIX}<SECTION>__<KEY>（两个下划线 / two underscores）"
    )
    log.warning(
        "环境变量 %s 不对应任何配置项，已忽略 (environment variable %s matches no config key, ignored)；%s",
        var,
        var,
        hint,
    )


def _check_dirs(settings: Settings, sources: dict[str, str], cwd: Path | None) -> None:
    """A ``paths.*`` folder that exists, or has an existing ancestor, must be (under) a folder, not a file.

    Otherwise every command would fail later with "not a directory", or (``novel list``) find nothing.
    """
    for name in PathSettings.model_fields:
        path = getattr(settings.paths, name).expanduser()
        if cwd is not None and not path.is_absolute():
            path = cwd / path
        for part in (path, *path.parents):
            try:
                if not part.exists():
                    continue
            except OSError:  # no permission to look: the command that uses it will say so
                break
            if not part.is_dir():
                key = f"paths.{name}"
                source = sources.get(key, "default")
                where = "" if part == path else f"（其中的 {part} 是文件 / {part} is a file）"
                raise ConfigError(
                    f"配置项 {key} 指向的不是文件夹 (not a folder, from {source}){where}",
                    expected="a folder (or a path that can be created as one)",
                    received=str(getattr(settings.paths, name)),
                    fix=f"修改 {source} 中的 {key}，或移走该文件 (point {key} at a folder)",
                )
            break


def _parse_scalar(raw: str) -> Any:
    """Lists and objects come as JSON; everything else stays a string for pydantic."""
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _put(
    merged: dict[str, dict[str, Any]], sources: dict[str, str], key: str, value: Any, label: str
) -> None:
    section, name = key.split(".", 1)
    merged.setdefault(section, {})[name] = value
    sources[key] = label


def _check_key(key: str, *, where: str | None = None) -> tuple[str, str]:
    keys = all_keys()
    section, _, name = key.partition(".")
    if section in keys and name in keys[section]:
        return section, name
    known = [f"{s}.{n}" for s, fields in keys.items() for n in fields]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = (
        f"是否想写 (did you mean) {', '.join(close)}？" if close else "运行 `xiaoshuo config` 查看全部配置项"
    )
    origin = f" in {where}" if where else ""
    raise ConfigError(
        f"未知配置项 (unknown config key{origin})",
        expected="one of: " + ", ".join(known) if not close else "a known dotted key",
        received=key,
        fix=hint,
    )


def _to_config_error(
    exc: ValidationError, merged: dict[str, dict[str, Any]], sources: dict[str, str]
) -> ConfigError:
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    key = ".".join(loc[:2])
    section, _, name = key.partition(".")
    value = merged.get(section, {}).get(name, err.get("input"))
    field = Settings.model_fields[section].annotation.model_fields.get(name)  # type: ignore[union-attr]
    expected = _describe_field(field) if field else "see `xiaoshuo config`"
    source = sources.get(key, "default")
    if key in URL_KEYS:
        expected = "an http(s) URL such as http://127.0.0.1:8000/v1" + (
            "" if key == "engine.openai_base_url" else ", or empty"
        )
        if isinstance(value, str):
            value = mask_url(value)
    more = (
        f"（另有 {len(exc.errors()) - 1} 处错误 / {len(exc.errors()) - 1} more）"
        if len(exc.errors()) > 1
        else ""
    )
    return ConfigError(
        f"配置项 {key} 的值无效 (invalid value, from {source}): {err['msg']}{more}",
        expected=expected,
        received=value,
        fix=f"修改 {source} 中的 {key} (fix {key} there)",
    )


def _describe_field(field: Any) -> str:
    ann = field.annotation
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(ann))
    if get_origin(ann) is not None:
        type_name = str(ann).replace("typing.", "")
    else:
        type_name = {"SecretStr": "str", "Path": "path"}.get(ann.__name__, ann.__name__)
    bounds = []
    for meta in field.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{sym} {getattr(meta, attr)}")
        if getattr(meta, "min_length", None):
            bounds.append("not empty")
    text = type_name + (f" ({', '.join(bounds)})" if bounds else "")
    return text
