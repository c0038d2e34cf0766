"""Build tiny *real* models offline: the test kit and the ``doctor --smoke`` check.

``build_tiny_model(path)`` writes, in seconds and with no network, a Hugging Face
model folder that every part of xiaoshuo loads like a real base model:

* a ``Qwen2ForCausalLM`` with random weights (head_dim 32, which vLLM's CPU
  attention supports; ``size="bench"`` gives a ~50M-parameter variant),
* a byte-level BPE tokenizer trained on a little Chinese text (any text encodes),
* the Qwen ChatML chat template, with ``{% generation %}`` markers around the
  assistant turn so assistant-only loss works, and ``<|im_end|>`` as EOS.

The output is deterministic for a given spec and cached by a content stamp.
This module is not a model zoo: it never downloads, and its models write noise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xiaoshuo.engine.base import END, Engine
from xiaoshuo.engine.types import Delta

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Original sample prose (written for this project) used to train the tiny tokenizer.
TINY_CORPUS = """第一章 雨夜
夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，站在城门外的老槐树下，望着远处渐渐熄灭的灯火。
“你终于来了。”身后传来一个清冷的声音。林远没有回头，只是轻轻叹了口气：“师姐，十年了，你还是这样。”
苏晚晴从阴影里走出来，手里握着一柄长剑，剑鞘上刻着一朵小小的梅花。她看着他，眼中有说不清的情绪。
第二章 旧事
十年前，青云山上的那场大火烧毁了半座藏经阁。没有人知道火是从哪里起的，只知道那一夜，掌门失踪了。
林远那时只有十五岁。他记得自己背着受伤的师弟，在浓烟里跌跌撞撞地跑下山，身后是倒塌的房梁和哭喊声。
第三章 重逢
客栈里人声嘈杂。掌柜是个胖胖的中年人，一边拨着算盘，一边偷偷打量这两位深夜来客。
“两间上房。”苏晚晴把一锭银子放在柜台上。掌柜连忙笑着应道：“好嘞，二位客官楼上请！”
窗外的雨越下越大。林远坐在桌前，打开那封泛黄的信，信上只有八个字：山河故人，此去经年。
他忽然明白了什么，猛地站起身来。远处传来马蹄声，一队黑衣人正朝客栈飞驰而来。
"""


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of a tiny Qwen2 model.  ``hidden_size / num_attention_heads`` must be a
    head size vLLM's CPU attention supports (32, 64, 80, 96, 112, 128, …)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    vocab_size: int = 1024  # tokenizer target; the model pads to a multiple of 64
    max_position_embeddings: int = 4096
    # Wide random weights make greedy output varied (0.02 yields "\n\n\n…"), so tests can
    # tell outputs apart (an adapter changed it, two backends agree token for token).
    initializer_range: float = 0.3
    seed: int = 0


SIZES: dict[str, TinyModelSpec] = {
    "tiny": TinyModelSpec(),
    # ~19M parameters: big enough to memorise a few passages in a quick overfit test.
    "small": TinyModelSpec(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=6,
        num_attention_heads=8,
        num_key_value_heads=2,
        vocab_size=1024,
        initializer_range=0.02,
    ),
    # ~50M parameters: for benchmarks, big enough that kernels (not Python) dominate.
    "bench": TinyModelSpec(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=16,
        num_attention_heads=8,
        num_key_value_heads=2,
        vocab_size=1024,
        initializer_range=0.1,
    ),
}

_STAMP = "xiaoshuo_tiny_model.json"


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    *,
    size: str = "tiny",
    spec: TinyModelSpec | None = None,
    dtype: str = "float32",
) -> Path:
    """Write a tiny Qwen2 model + tokenizer folder at ``out_dir`` and return its path.

    Re-uses an existing folder built from the same spec.  Imports torch and
    transformers lazily (the CLI stays fast).
    """
    spec = spec or SIZES[size]
    out = Path(out_dir)
    stamp = {"spec": asdict(spec), "dtype": dtype, "corpus": _sha(TINY_CORPUS), "v": 1}
    stamp_path = out / _STAMP
    if stamp_path.is_file() and json.loads(stamp_path.read_text("utf-8")) == stamp:
        return out

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=out.parent))
    try:
        tokenizer = _build_tokenizer(spec)
        tokenizer.save_pretrained(tmp)
        _build_model(spec, tokenizer, dtype).save_pretrained(tmp)
        (tmp / _STAMP).write_text(json.dumps(stamp), "utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)  # atomic: a half-built model is never visible
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _build_tokenizer(spec: TinyModelSpec):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TINY_CORPUS.splitlines() * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHATML_TEMPLATE,
        model_max_length=spec.max_position_embeddings,
    )


def _build_model(spec: TinyModelSpec, tokenizer, dtype: str):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    vocab = -(-len(tokenizer) // 64) * 64
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        initializer_range=spec.initializer_range,
        tie_word_embeddings=True,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
        dtype=dtype,
    )
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad)
    return model


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


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]



class ScriptedEngine(Engine):
    """A backend that answers from a script, for tests of code *around* generation.

    Each request gets ``respond(request)`` — by default the next scripted text (``default`` once the
    script is used up) — cut to ``max_tokens`` characters and streamed in ``chunk``-character deltas;
    without a tokenizer, tokens are counted one per character.  Register it like any backend with
    :func:`xiaoshuo.engine.register_backend`.  Real engines are tested on real models.
    """

    backend = "scripted"

    def __init__(
        self,
        script: list[str] | None = None,
        *,
        default: str = "。",
        chunk: int = 7,
        max_model_len: int = 32768,
        tokenizer: Any = None,
        system_prompt: str = "",
    ) -> None:
        super().__init__(tokenizer=tokenizer, max_model_len=max_model_len, system_prompt=system_prompt)
        self.script = list(script or [])
        self.default = default
        self.chunk = max(1, chunk)
        self.requests: list[Any] = []

    def count_tokens(self, text: str) -> int:
        return super().count_tokens(text) if self.tokenizer is not None else len(text)

    def render(self, request: Any) -> str:
        return super().render(request) if self.tokenizer is not None else ""

    def respond(self, request: Any) -> str:
        return self.script.pop(0) if self.script else self.default

    def _submit(self, prepared: Any, sink: Any) -> None:
        req = prepared.request
        self.requests.append(req)
        limit = req.sampling.max_tokens
        text = self.respond(req)[:limit]
        for i in range(0, len(text), self.chunk):
            sink(Delta(req.request_id, 0, text[i : i + self.chunk], None, 0, min(i + self.chunk, len(text))))
        sink(Delta(req.request_id, 0, "", "stop" if len(text) < limit else "length", 0, len(text)))
        sink(END)

    def _abort(self, request_id: str) -> None:
        pass

    def unfinished_requests(self) -> int:
        return 0

    def _shutdown(self) -> None:
        pass
