"""The test kit: tiny real models and adapters, their engine settings, a server, the CLI, a scripted engine.

:func:`build_tiny_model` (re-exported from :mod:`xiaoshuo.tiny`, which ``builtin-tiny``, the demo and
``doctor --smoke`` use without this kit) writes, in seconds and with no network, a Hugging Face model
folder that every part of xiaoshuo loads like a real base model; :func:`build_tiny_lora` a random
peft adapter for it.  :class:`ScriptedEngine` answers from a script, for code *around* generation.
This module is not a model zoo: it never downloads, and its models write noise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xiaoshuo.engine.base import END, Engine, TextScore
from xiaoshuo.engine.types import Delta
from xiaoshuo.tiny import (  # noqa: F401 - the kit's model builder, re-exported
    CHATML_TEMPLATE,
    SIZES,
    SPECIAL_TOKENS,
    TINY_CORPUS,
    TinyModelSpec,
    build_tiny_model,
)


def build_tiny_lora(
    model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, seed: int = 1, r: int = 8
) -> Path:
    """A random (non-zero) peft LoRA adapter for a tiny model: it visibly changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    if (out / "adapter_config.json").is_file():
        return out
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False,  # random A and B: the adapter is not a no-op
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    tmp = Path(tempfile.mkdtemp(prefix=".lora-", dir=out.parent if out.parent.exists() else None))
    try:
        model.save_pretrained(tmp)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def tiny_engine_settings(model_dir: str | os.PathLike[str], workdir: str | os.PathLike[str], **overrides):
    """Settings for an engine on a tiny model: fp32 (exact cross-backend checks), 1 GiB CPU KV cache."""
    from xiaoshuo import config

    values = {
        "model.base_model": str(model_dir),
        "model.dtype": "float32",
        "engine.cpu_kv_cache_gib": 1,
        "paths.data_dir": str(Path(workdir) / "data"),
        "paths.models_dir": str(Path(workdir) / "models"),  # merged-adapter caches land here, not in cwd
    }
    values.update(overrides)
    return config.load(env={}, cwd=workdir, overrides=values)


@contextlib.contextmanager
def start_openai_server(
    model_dir: str | os.PathLike[str],
    lora_modules: dict[str, str] | None = None,
    port: int | None = None,
    *,
    served_name: str | None = "tiny",
    workdir: str | os.PathLike[str] | None = None,
    timeout: float = 300,
) -> Iterator[str]:
    """Run a real vLLM OpenAI server on a tiny model (as ``xiaoshuo serve`` would); yield its base URL.

    ``lora_modules``: ``{served name: adapter folder}`` (``--enable-lora --lora-modules``);
    ``port`` None picks a free one.  The server log goes to ``workdir/server.log``
    (a temp folder when None).  Raises if the server exits or is not up within
    ``timeout`` seconds; on exit the whole process group is stopped (SIGTERM, then SIGKILL).
    """
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    from xiaoshuo.engine import EngineError
    from xiaoshuo.engine.openai_backend import serve_command

    if port is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="xiaoshuo-server-"))
    work.mkdir(parents=True, exist_ok=True)
    settings = tiny_engine_settings(model_dir, work, **{"engine.enforce_eager": True})
    cmd = serve_command(settings, adapters=dict(lora_modules or {}), port=port, served_name=served_name)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    log_path = work / "server.log"
    url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise EngineError("vLLM 服务器退出 (server exited)", received=log_path.read_text()[-3000:])
            if time.monotonic() > deadline:
                raise EngineError(
                    f"vLLM 服务器未在 {timeout:.0f}s 内启动 (server not up)",
                    received=log_path.read_text()[-3000:],
                )
            try:
                with urllib.request.urlopen(url + "/models", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def run_cli(
    *args: str,
    cwd: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 300,
):
    """Run ``python -m xiaoshuo ARGS`` in a clean environment (no XIAOSHUO_* from the caller's shell)."""
    import subprocess
    import sys

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "xiaoshuo", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )


def count_parameters(model_dir: str | os.PathLike[str]) -> int:
    """Number of parameters of a built model (reads the safetensors header only)."""
    from safetensors import safe_open

    total = 0
    for file in Path(model_dir).glob("*.safetensors"):
        with safe_open(file, framework="numpy") as fh:
            for name in fh.keys():  # noqa: SIM118 - safe_open is not a dict
                total += _prod(fh.get_slice(name).get_shape())
    return total


def _prod(shape: list[int]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


class ScriptedEngine(Engine):
    """A backend that answers from a script, for tests of code *around* generation.

    Each request gets ``respond(request)`` — by default the next scripted text (``default`` once the
    script is used up) — cut to ``max_tokens`` characters and streamed in ``chunk``-character deltas;
    without a tokenizer, tokens are counted one per character.  ``delay`` > 0 streams on a thread of
    its own, ``delay`` seconds between deltas, like a real engine: a request cancelled meanwhile ends
    with finish reason ``"abort"``; :attr:`aborted` holds the ids cancelled, :attr:`finished` those that
    ran to their end, and :meth:`unfinished_requests` counts those still streaming.  Register it like
    any backend with :func:`xiaoshuo.engine.register_backend`.  Real engines are tested on real models.

    :meth:`score` (``Engine.score``): ``scorer(prefix, text, lora)`` → total log-prob when given; by
    default a character unigram model of the script (add-one smoothing over 5,000 characters), one token
    per character, the same for every adapter.
    """

    backend = "scripted"

    def __init__(
        self,
        script: list[str] | None = None,
        *,
        default: str = "。",
        chunk: int = 7,
        delay: float = 0.0,
        max_model_len: int = 32768,
        tokenizer: Any = None,
        system_prompt: str = "",
        scorer: Any = None,
    ) -> None:
        import threading

        super().__init__(tokenizer=tokenizer, max_model_len=max_model_len, system_prompt=system_prompt)
        self.script = list(script or [])
        self.default = default
        self.chunk = max(1, chunk)
        self.delay = delay
        self.scorer = scorer
        self.requests: list[Any] = []
        self.aborted: set[str] = set()
        self.finished: set[str] = set()
        self._live = 0
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return super().count_tokens(text) if self.tokenizer is not None else len(text)

    def render(self, request: Any) -> str:
        return super().render(request) if self.tokenizer is not None else ""

    def respond(self, request: Any) -> str:
        return self.script.pop(0) if self.script else self.default

    def _submit(self, prepared: Any, sink: Any) -> None:
        import threading
        import time

        req = prepared.request
        with self._lock:
            self.requests.append(req)
            self._live += 1
        limit = req.sampling.max_tokens
        try:
            text = self.respond(req)[:limit]
        except BaseException:
            with self._lock:
                self._live -= 1
            raise

        def emit() -> None:
            try:
                for i in range(0, len(text), self.chunk):
                    if req.request_id in self.aborted:
                        sink(Delta(req.request_id, 0, "", "abort", 0, i))
                        return
                    end = min(i + self.chunk, len(text))
                    sink(Delta(req.request_id, 0, text[i:end], None, 0, end))
                    if self.delay:
                        time.sleep(self.delay)
                self.finished.add(req.request_id)
                sink(Delta(req.request_id, 0, "", "stop" if len(text) < limit else "length", 0, len(text)))
            finally:
                with self._lock:
                    self._live -= 1
                sink(END)

        if self.delay:
            threading.Thread(target=emit, name="scripted-engine", daemon=True).start()
        else:
            emit()

    def _score(self, prefix: str, text: str, lora: Any) -> TextScore:
        import math
        from collections import Counter

        if self.scorer is not None:
            return TextScore(float(self.scorer(prefix, text, None if lora is None else lora[0])), len(text))
        counts = Counter("".join([*self.script, self.default]))
        total = sum(counts.values()) + 5000
        return TextScore(sum(math.log((counts.get(ch, 0) + 1) / total) for ch in text), len(text))

    def _abort(self, request_id: str) -> None:
        self.aborted.add(request_id)

    def unfinished_requests(self) -> int:
        return self._live

    def _shutdown(self) -> None:
        pass


class EngineHolderStub:
    """A WebUI ``EngineHolder`` stand-in for tests of the pages: ``engine`` loaded (``ready``), or no
    engine: ``loading`` or ``error`` (one class; the page tests had four copies)."""

    def __init__(
        self,
        engine: Any = None,
        *,
        state: str | None = None,
        model: str | None = None,
        backend: str | None = None,
        lora: dict[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.state = state or ("ready" if engine is not None else "error")
        name = getattr(engine, "backend", None) or "none"
        self.model, self.backend, self.lora = model or name, backend or name, dict(lora or {})

    def loading(self) -> bool:
        return self.state == "loading"

    def get(self):
        if self.state == "ready":
            return self.engine
        from xiaoshuo.errors import XiaoshuoError

        raise XiaoshuoError("模型还不能用 (the model is not ready)", received=self.status()[1])

    def status(self) -> tuple[str, str]:
        return self.state, {"ready": "ready", "loading": f"loading {self.model}"}.get(self.state, "no model")

    def wait(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a test server)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
