"""llama.cpp backend (llama-cpp-python): GGUF models on a laptop's CPU (or Metal/CUDA when built so).

One worker thread owns the ``llama_cpp.Llama`` (it is not thread-safe) and runs requests one at a time,
candidates one after another; tokens are pushed into the caller's sink as they are sampled.  A cancel flag
is checked between tokens (a prompt's prefill runs to its end first).  Consecutive requests reuse the KV
cache of their common prompt prefix (llama-cpp-python's ``generate``), as vLLM's prefix caching does.

* Sampling: temperature (0 = greedy), top_p, top_k (-1/0 = off), min_p, repetition/presence/frequency
  penalties (llama.cpp applies them to the last :data:`PENALTY_WINDOW` generated tokens, not to the
  prompt), seeds (candidate *i* of a seeded request uses ``seed + i``), stop strings (cut from the
  text, as vLLM does), ``ignore_eos``, ``n`` candidates.
* Tokens: counted with the GGUF's own tokenizer (a vocab-only copy of the model, so callers on other
  threads never touch the generating ``Llama``); messages are rendered with the chat template in the GGUF
  metadata (``tokenizer.chat_template``, llama-cpp-python's ``Jinja2ChatFormatter``).  A base model without
  one (Gemma 3 270M pretrained) gets its messages as plain text (:func:`plain_messages`: the system prompt
  left out, the rest joined by blank lines) and continues them.  A plain prompt starts with BOS when the
  GGUF says so.
* Structured output: a request's JSON schema becomes a llama.cpp grammar
  (``LlamaGrammar.from_json_schema``, cached per schema).
* LoRA: GGUF LoRA adapters (``llama_adapter_lora_init``), switched per request with
  ``llama_set_adapters_lora`` (the KV cache is dropped on a switch).  A peft adapter folder is converted
  to a GGUF LoRA once (:func:`xiaoshuo.gguf_convert.convert_lora_to_gguf`, cached under
  ``paths.models_dir/gguf``); a ``.gguf`` adapter file is used as it is.
* Model: a ``.gguf`` file, or a Hugging Face folder of a Qwen2/Qwen3 model, converted once to GGUF
  (:func:`ensure_gguf`; f32 when ``model.dtype = float32``, else f16).

Not responsible for choosing the backend (:mod:`xiaoshuo.engine.selection`) or validating requests
(:mod:`xiaoshuo.engine.types`).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import random
import threading
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings
from xiaoshuo.engine.base import END, EngineError, Prepared, Sink, WorkerQueueEngine
from xiaoshuo.engine.types import Delta, GenerationRequest
from xiaoshuo.gguf_convert import INSTALL, import_llama_cpp

__all__ = ["INSTALL", "GGUFTokenizer", "LlamaCppEngine", "ensure_gguf", "import_llama_cpp", "is_gguf"]

log = logging.getLogger(__name__)

#: generated tokens the repetition/presence/frequency penalties look back over (llama.cpp's window)
PENALTY_WINDOW = 256
_CONVERTER_VERSION = 1

def is_gguf(model: str | os.PathLike[str]) -> bool:
    return str(model).lower().endswith(".gguf")


def _stamp(folder: Path, extra: str) -> str:
    """A content stamp of a model/adapter folder: its small JSON files' text, its weights' sizes and times."""
    h = hashlib.sha256(f"{_CONVERTER_VERSION}:{extra}".encode())
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        stat = path.stat()
        h.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        if path.suffix == ".json" and stat.st_size < 1 << 20:
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def gguf_cache_dir(settings: Settings) -> Path:
    """Where converted GGUF models and adapters are kept (``paths.models_dir/gguf``)."""
    return Path(settings.paths.models_dir).expanduser() / "gguf"


def ensure_gguf(settings: Settings, model: str) -> Path:
    """The GGUF file for ``model``: the file itself, or a Hugging Face folder converted once (cached)."""
    path = Path(model).expanduser()
    if is_gguf(model):
        if not path.is_file():
            raise EngineError(
                "找不到 GGUF 模型文件 (GGUF model file not found)",
                received=str(path),
                expected="an existing .gguf file",
                fix="检查路径，或用 xiaoshuo model pull REPO --file '*.gguf' 下载",
            )
        return path
    if not (path / "config.json").is_file():
        raise EngineError(
            "llamacpp 后端需要 GGUF 文件或本地模型目录 (llamacpp needs a .gguf file or a local model folder)",
            expected="--model path/to/model.gguf (or a pulled Qwen2/Qwen3 folder)",
            received=model,
            fix="xiaoshuo model pull REPO --file '*Q4_K_M.gguf'，再用 --model 指向下载的 .gguf",
        )
    from xiaoshuo.gguf_convert import convert_hf_to_gguf

    outtype = "f32" if settings.model.dtype == "float32" else "f16"
    target = gguf_cache_dir(settings) / f"{path.name}-{_stamp(path, outtype)}-{outtype}.gguf"
    if not target.is_file():
        log.warning("把模型转换为 GGUF converting %s to GGUF (%s) → %s …", path, outtype, target)
        convert_hf_to_gguf(path, target, outtype=outtype)
    return target


def ensure_gguf_lora(settings: Settings, adapter: str, base_gguf: Path) -> Path:
    """A GGUF LoRA for ``adapter``: a ``.gguf`` file as it is, a peft folder converted once (cached)."""
    path = Path(adapter)
    if is_gguf(adapter):
        return path
    from xiaoshuo.gguf_convert import convert_lora_to_gguf

    target = gguf_cache_dir(settings) / "lora" / f"{path.name}-{_stamp(path, base_gguf.name)}.gguf"
    if not target.is_file():
        log.info("converting adapter %s to a GGUF LoRA → %s", path, target)
        convert_lora_to_gguf(path, target, base_gguf)
    return target


def plain_messages(messages: Any) -> str:
    """A base model's prompt for chat messages (its GGUF has no chat template): the non-system messages'
    texts, in order, separated by blank lines — the model continues the last one, as a base model does."""
    parts = [m["content"].strip("\n") for m in messages if m["role"] != "system"]
    return "\n\n".join(p for p in parts if p) + "\n"


CLOSED = "GGUF 分词器已关闭 (the GGUF tokenizer is closed)"


class GGUFTokenizer:
    """The GGUF's tokenizer (a vocab-only llama.cpp model) with the few methods the engine base uses."""

    def __init__(self, path: Path, *, verbose: bool = False) -> None:
        llama_cpp = import_llama_cpp()
        from llama_cpp._internals import LlamaModel

        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._llama_cpp = llama_cpp
        self._model = LlamaModel(path_model=str(path), params=params, verbose=verbose)
        self._lock = threading.Lock()
        self._closed = False
        self._pieces: dict[int, bytes] = {}
        self.name_or_path = str(path)
        self.metadata = self._model.metadata()
        arch = self.metadata.get("general.architecture", "")
        # a vocab-only model reports no training context: the metadata has it
        self.n_ctx_train = int(self.metadata.get(f"{arch}.context_length") or 0) or self._model.n_ctx_train()
        self.bos_token_id = self._model.token_bos()
        self.eos_token_id = self._model.token_eos()
        self.add_bos = bool(self._model.add_bos_token()) and self.bos_token_id >= 0
        self.bos_token = self._text(self.bos_token_id)
        self.eos_token = self._text(self.eos_token_id)
        self.chat_template = self.metadata.get("tokenizer.chat_template") or None
        self._formatter: Any = None

    def _text(self, token: int) -> str:
        return self._model.token_get_text(token) if token >= 0 else ""

    def is_eog(self, token: int) -> bool:
        return bool(self._llama_cpp.llama_vocab_is_eog(self._model.vocab, token))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special-token text (``<|im_start|>``) becomes the special token."""
        if not text:
            return []
        with self._lock:
            if self._closed:  # llama.cpp would read freed memory
                raise EngineError(CLOSED, received=self.name_or_path)
            return self._model.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text)}

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            if self._closed:
                raise EngineError(CLOSED, received=self.name_or_path)
            size = 256
            buf = ctypes.create_string_buffer(size)
            n = self._llama_cpp.llama_token_to_piece(self._model.vocab, token, buf, size, 0, False)
            piece = bytes(buf[: max(n, 0)])
            self._pieces[token] = piece
        return piece

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return b"".join(self._piece(t) for t in ids).decode("utf-8", errors="replace")

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool = False, add_generation_prompt: bool = True
    ) -> str:
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            self._formatter = Jinja2ChatFormatter(
                template=self.chat_template or "",
                eos_token=self.eos_token,
                bos_token=self.bos_token,
                add_generation_prompt=add_generation_prompt,
            )
        return self._formatter(messages=list(messages)).prompt

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._model.close()


def extra_buffers_ok(flags: set[str] | None = None) -> bool:
    """Whether llama.cpp may use its extra CPU buffer types (AMX tiles, weight repacking) for quantized
    weights.  Not on a CPU with AMX: there llama-cpp-python 0.3.36 (built from source, AMX_INT8 = 1)
    segfaults in the first decode of every quantized GGUF (Q8_0, Q4_K_M; Gemma's file too) while
    f16/f32 run; without the extra buffers the same files run correctly, and f16's greedy tokens equal
    transformers' (measured on this project's Xeon build machine).  The cost is the repacked kernels'
    speed on such CPUs."""
    if flags is None:
        from xiaoshuo.hardware import cpu_flags

        flags = cpu_flags()
    return "amx_int8" not in flags


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def _model_params(*, extra_buffers: bool) -> Any:
    """Build a ``Llama`` with ``use_extra_bufts`` set: its constructor takes no such argument, so the
    default-params function it calls is wrapped for the duration (under a lock: one load at a time)."""
    if extra_buffers:
        yield
        return
    import llama_cpp.llama as llama_module

    with _PARAMS_LOCK:
        module = llama_module.llama_cpp
        original = module.llama_model_default_params

        def params() -> Any:
            value = original()
            value.use_extra_bufts = False
            return value

        module.llama_model_default_params = params
        try:
            yield
        finally:
            module.llama_model_default_params = original


def _threads(settings: Settings) -> int:
    wanted = settings.engine.llamacpp_threads
    return wanted if wanted > 0 else max(1, os.cpu_count() or 1)


class LlamaCppEngine(WorkerQueueEngine):
    backend = "llamacpp"

    def __init__(self, settings: Settings, model: str, adapters: dict[str, str]) -> None:
        llama_cpp = import_llama_cpp()
        self._llama_cpp = llama_cpp
        self._settings = settings
        self.model_file = ensure_gguf(settings, model)
        tokenizer = GGUFTokenizer(self.model_file)
        super().__init__(
            tokenizer=tokenizer,
            max_model_len=min(settings.model.vllm_max_model_len, tokenizer.n_ctx_train or 1 << 20),
            system_prompt=settings.engine.system_prompt,
        )
        self._init_queue()
        self._grammars: dict[str, Any] = {}
        self._loras: dict[str, Any] = {}  # name → llama_adapter_lora_p (worker thread only)
        self._lora_files: dict[str, Path] = {}
        self._active_lora: str | None = None
        self._llm: Any = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._worker = threading.Thread(target=self._work, name="xiaoshuo-llamacpp", daemon=True)
        self._worker.start()
        self._started.wait()
        if self._start_error is not None:
            tokenizer.close()
            raise self._start_error
        try:
            for name, path in adapters.items():
                self.register_adapter(name, path)
        except BaseException:
            self.close()  # the worker thread and the model, not left behind by a bad adapter
            raise

    # ------------------------------------------------------------ adapters
    def register_adapter(self, name: str, path: str | Path) -> str:
        """A peft adapter folder (converted to GGUF once) or a GGUF LoRA file."""
        if not is_gguf(path):
            return super().register_adapter(name, path)
        file = Path(path).expanduser()
        if not file.is_file():
            raise EngineError("找不到 GGUF LoRA 文件 (GGUF LoRA file not found)", received=str(file))
        with self._lock:
            known = self._adapters.get(name)
            if known is not None and known != str(file.resolve()):
                raise EngineError(
                    f"适配器名称已被占用 (adapter name already used): {name}",
                    received=str(file),
                    expected=f"a new name (taken by {known})",
                )
            self._adapters[name] = str(file.resolve())
        self._adapter_registered(name, self._adapters[name])
        return name

    def _adapter_registered(self, name: str, path: str) -> None:
        self._lora_files[name] = ensure_gguf_lora(self._settings, path, self.model_file)

    # ------------------------------------------------------------ prompts
    def render(self, request: GenerationRequest) -> str:
        tok = self.tokenizer
        if request.messages is not None and not tok.chat_template:
            text = plain_messages(request.messages)
        else:
            text = super().render(request)
        if tok.add_bos and tok.bos_token and not text.startswith(tok.bos_token):
            return tok.bos_token + text  # as llama.cpp's own tools start a prompt (Gemma needs it)
        return text

    # ------------------------------------------------------------ requests
    # ------------------------------------------------------------ worker thread
    def _load(self) -> None:
        from llama_cpp import Llama

        cfg = self._settings.engine
        with _model_params(extra_buffers=extra_buffers_ok()):
            self._llm = Llama(
                model_path=str(self.model_file),
                n_ctx=self.max_model_len,
                n_batch=512,
                n_threads=_threads(self._settings),
                n_threads_batch=_threads(self._settings),
                n_gpu_layers=cfg.llamacpp_gpu_layers,
                last_n_tokens_size=PENALTY_WINDOW,
                seed=0,
                verbose=logging.getLogger("xiaoshuo").isEnabledFor(logging.DEBUG),
            )

    def _work(self) -> None:
        try:
            self._load()
        except BaseException as exc:
            self._start_error = EngineError(
                "llama.cpp 无法加载模型 (llama.cpp could not load the model)",
                received=f"{self.model_file}: {type(exc).__name__}: {exc}",
                expected="a GGUF file of an architecture this llama.cpp build knows",
                fix="检查文件是否完整，或更新 llama-cpp-python",
            )
            self._started.set()
            return
        self._started.set()
        while True:
            job = self._jobs.get()
            if job is None:
                break
            prepared, sink = job
            rid = prepared.request.request_id
            try:
                self._generate(prepared, sink)
            except Exception as exc:
                sink(EngineError(f"llama.cpp 生成失败 (generation failed): {type(exc).__name__}: {exc}"))
            finally:
                with self._state_lock:
                    self._running.discard(rid)
                    self._cancelled.discard(rid)
        self._release()

    def _release(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            with contextlib.suppress(Exception):
                self._set_lora(llm, None)
            self._loras.clear()  # llama.cpp frees adapters with their model
            llm.close()

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True, ensure_ascii=False)
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp import LlamaGrammar

            try:
                grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
            except Exception as exc:
                raise EngineError(
                    "无法把 JSON schema 转成 llama.cpp 语法 (cannot turn the JSON schema into a grammar)",
                    received=f"{type(exc).__name__}: {exc}",
                ) from None
            self._grammars[key] = grammar
        return grammar

    def _set_lora(self, llm: Any, name: str | None) -> None:
        """Make ``name`` (None: the base) the context's only adapter; drop the KV cache on a change."""
        if name == self._active_lora:
            return
        lc = self._llama_cpp
        if name is None:
            rc = lc.llama_set_adapters_lora(llm._ctx.ctx, None, 0, None)
        else:
            adapter = self._loras.get(name)
            if adapter is None:
                adapter = lc.llama_adapter_lora_init(llm._model.model, str(self._lora_files[name]).encode())
                if adapter is None:
                    raise EngineError(
                        "llama.cpp 无法加载 LoRA 适配器 (llama.cpp could not load the adapter)",
                        received=str(self._lora_files[name]),
                        expected="a GGUF LoRA made for this model's architecture",
                    )
                self._loras[name] = adapter
            arr = (lc.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(1.0)
            rc = lc.llama_set_adapters_lora(llm._ctx.ctx, arr, 1, scales)
        if rc:
            raise EngineError("llama.cpp 无法切换 LoRA 适配器 (cannot set the adapter)", received=rc)
        self._active_lora = name
        llm.reset()  # the cached prefix was computed with other weights

    def _generate(self, prepared: Prepared, sink: Sink) -> None:
        from xiaoshuo.engine.transformers_backend import CandidateText

        llm = self._llm
        req = prepared.request
        rid = req.request_id
        s = req.sampling
        prompt = list(prepared.prompt_ids or ())
        prompt_tokens = len(prompt)
        grammar = self._grammar(req.json_schema) if req.json_schema is not None else None
        if prepared.lora is not None and prepared.lora[0] not in self._lora_files:
            self._adapter_registered(*prepared.lora)
        self._set_lora(llm, None if prepared.lora is None else prepared.lora[0])
        tok = self.tokenizer
        for i in range(s.n):
            seed = s.seed + i if s.seed is not None else random.randrange(1 << 31)
            llm.set_seed(seed)
            cand = CandidateText(tok, set(), s.stop)
            count = 0
            tokens = llm.generate(
                prompt,
                top_k=s.top_k if s.top_k > 0 else 0,
                top_p=s.top_p,
                min_p=s.min_p,
                temp=s.temperature,
                repeat_penalty=s.repetition_penalty,
                frequency_penalty=s.frequency_penalty,
                presence_penalty=s.presence_penalty,
                grammar=grammar,
                reset=True,
            )
            try:
                for token in tokens:
                    if self._is_cancelled(rid):
                        cand.finish = "abort"
                        sink(Delta(rid, i, cand.rest(), "abort", prompt_tokens, count))
                        break
                    count += 1
                    if not s.ignore_eos and tok.is_eog(token):
                        cand.finish = "stop"
                        piece = cand.rest()
                    else:
                        piece = cand.add(token)
                        if cand.finish is None and count >= s.max_tokens:
                            cand.finish = "length"
                            piece += cand.rest()
                    sink(Delta(rid, i, piece, cand.finish, prompt_tokens, count, (token,)))
                    if cand.finish is not None:
                        break
            finally:
                tokens.close()
            if cand.finish is None:  # the context filled up
                cand.finish = "length"
                sink(Delta(rid, i, cand.rest(), "length", prompt_tokens, count))
            if cand.finish == "abort":
                for j in range(i + 1, s.n):
                    sink(Delta(rid, j, "", "abort", prompt_tokens, 0))
                break
        sink(END)

    # ------------------------------------------------------------ lifecycle
    def _shutdown(self) -> None:
        with self._state_lock:
            self._cancelled.update(self._running)
        self._jobs.put(None)
        self._worker.join(timeout=60)
        # the tokenizer (a vocab-only model, a few MB) stays: count_tokens works after close, as on the
        # other backends; it is freed with the engine object

    @property
    def tokenizer_source(self) -> str:
        return f"GGUF tokenizer {self.model_file.name}"
