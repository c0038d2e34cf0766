"""``xiaoshuo adapters export``: a trained adapter as GGUF for llama.cpp, Ollama, LM Studio and llama-server.

:func:`export_gguf` runs the stages and reports each through ``progress``:

1. **merge** — the adapter merged into its base with the one merge and its cache
   (:func:`xiaoshuo.adapters.ensure_merged`; an unchanged adapter is reused, not merged again);
2. **convert** — the merged folder to a GGUF F16 (:func:`xiaoshuo.gguf_convert.convert_hf_to_gguf`);
3. **quantize** — llama.cpp's quantizer through llama-cpp-python (``Q8_0``, ``Q5_K_M``, ``Q4_K_M``;
   :func:`xiaoshuo.gguf_convert.quantize_gguf`), skipped for ``F16``;
4. **verify** — the file loaded by the llamacpp engine and a few greedy tokens generated; a file that does
   not load is never placed.

With ``lora_only`` the adapter alone becomes a GGUF LoRA (``convert_lora_to_gguf``) for llama-server's
``--lora``; it is verified on the base model's GGUF (the llamacpp engine's converted-model cache).  With
``ollama`` a ``Modelfile`` is written beside the GGUF (:func:`modelfile_text`: ``FROM``, the ChatML chat
template as a Go template, stop tokens, the configured sampling defaults) and checked with
:func:`parse_modelfile` before it is written.

Files go to ``--output DIR`` (default ``data/exports/<name>-gguf``) by export's rules
(:func:`xiaoshuo.writing.exporting.place_export` / ``write_export``: every target is checked before any work,
never replaced without ``overwrite``, never inside the models or checkpoints folders; each file appears
atomically).  Intermediate files live in a hidden work folder inside the output folder
(``.gguf-export-PID-…``), removed at the end; a killed export's is removed by the next export there.

Not responsible for the conversion itself (:mod:`xiaoshuo.gguf_convert`), the merge (:mod:`xiaoshuo.adapters`)
or serving the file (:mod:`xiaoshuo.engine.llamacpp_backend`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xiaoshuo.errors import DependencyError, XiaoshuoError

QUANTS = ("Q4_K_M", "Q5_K_M", "Q8_0", "F16")
DEFAULT_QUANT = "Q4_K_M"
#: the prompt the verify stage continues (greedy, exactly :data:`VERIFY_TOKENS` tokens)
VERIFY_PROMPT = "第1章 夜色如墨，林远推开客栈的门，"
VERIFY_TOKENS = 8
SUPPORTED_ARCHITECTURES = ("Qwen2ForCausalLM", "Qwen3ForCausalLM")
MODELFILE = "Modelfile"
WORK_PREFIX = ".gguf-export-"  # + pid: intermediate files inside the output folder
#: Modelfile instructions Ollama knows (https://github.com/ollama/ollama/blob/main/docs/modelfile.md)
MODELFILE_INSTRUCTIONS = (
    "FROM",
    "PARAMETER",
    "TEMPLATE",
    "SYSTEM",
    "ADAPTER",
    "LICENSE",
    "MESSAGE",
    "REQUIRES",
)
#: PARAMETER names Ollama knows, and the kind of value each takes
MODELFILE_PARAMETERS = {
    "num_ctx": int,
    "repeat_last_n": int,
    "repeat_penalty": float,
    "temperature": float,
    "seed": int,
    "stop": str,
    "num_predict": int,
    "top_k": int,
    "top_p": float,
    "min_p": float,
}
# Ollama's ChatML template (Go text/template), as its own Qwen models carry it
CHATML_TEMPLATE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n"
)

Progress = Callable[[str, str], None]  # (stage, message)


class ExportError(XiaoshuoError):
    """An adapter could not be exported as GGUF."""


@dataclass
class ExportResult:
    name: str
    output_dir: Path
    gguf: Path
    quant: str  # Q4_K_M … F16, or "LoRA F32"
    seconds: dict[str, float] = field(default_factory=dict)  # stage → seconds
    verify_tokens: list[int] = field(default_factory=list)
    verify_text: str = ""
    modelfile: Path | None = None
    base_gguf: Path | None = None  # lora_only: the base model's GGUF the adapter was verified on
    merged_dir: Path | None = None

    @property
    def bytes(self) -> int:
        return self.gguf.stat().st_size

    def ollama_command(self) -> str | None:
        if self.modelfile is None:
            return None
        return f"cd {self.output_dir} && ollama create {ollama_name(self.name)} -f {MODELFILE}"

    def llama_server_command(self) -> str:
        if self.base_gguf is not None:
            return f"llama-server -m {self.base_gguf} --lora {self.gguf}"
        return f"llama-server -m {self.gguf}"


# ---------------------------------------------------------------------------- the adapter and its base
def _adapter_and_base(settings: Any, name_or_folder: str, base: str | None) -> tuple[str, Path, str]:
    """(display name, adapter folder, base model) for a trained adapter's name or a peft folder."""
    from xiaoshuo.adapters import MANIFEST, list_adapters, resolve_adapter, run_name

    checkpoints = Path(settings.paths.checkpoints_dir)
    folder = resolve_adapter(checkpoints, name_or_folder)
    if folder is None:
        trained = [a.name for a in list_adapters(checkpoints)]
        raise ExportError(
            f"找不到要导出的适配器 (no such adapter): {name_or_folder}",
            expected="a trained adapter ("
            + (", ".join(trained) or "none yet")
            + ") or a peft adapter folder",
            received=name_or_folder,
            fix="xiaoshuo adapters list 查看已训练的适配器 (see trained adapters)",
        )
    wanted = (base or "").strip()
    if not wanted:
        for source, key in ((MANIFEST, "base_model"), ("adapter_config.json", "base_model_name_or_path")):
            try:
                wanted = str(json.loads((folder / source).read_text("utf-8")).get(key) or "").strip()
            except (OSError, ValueError):
                wanted = ""
            if wanted:
                break
    if not wanted:
        raise ExportError(
            "不知道适配器的基础模型 (the adapter names no base model)",
            expected="base_model in xiaoshuo_manifest.json or base_model_name_or_path in adapter_config.json",
            received=str(folder),
            fix="用 --base 指定基础模型 (name the base model with --base)",
        )
    return run_name(folder), folder, wanted


def _check_architecture(base_dir: Path) -> None:
    from xiaoshuo.gguf_convert import convertible

    if convertible(base_dir):
        return
    try:
        names = json.loads((base_dir / "config.json").read_text("utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        names = []
    raise ExportError(
        "暂不支持把这种模型结构导出为 GGUF (architecture not supported by the GGUF export)",
        expected=" / ".join(SUPPORTED_ARCHITECTURES),
        received=", ".join(map(str, names)) or f"no architectures in {base_dir / 'config.json'}",
        fix="先 xiaoshuo adapters merge 得到合并模型，再用 llama.cpp 的 convert_hf_to_gguf.py 转换 "
        "(merge, then convert with llama.cpp's convert_hf_to_gguf.py)",
    )


def ollama_name(name: str) -> str:
    """A model name Ollama accepts (lowercase letters, digits, ``.``, ``_``, ``-``)."""
    clean = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return clean if clean else "xiaoshuo-style"


# ---------------------------------------------------------------------------- Modelfile
def _chat_template(model_dir: Path) -> str:
    for source in ("tokenizer_config.json", "chat_template.json"):
        try:
            value = json.loads((model_dir / source).read_text("utf-8")).get("chat_template")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value:
            return value
    try:
        return (model_dir / "chat_template.jinja").read_text("utf-8")
    except OSError:
        return ""


def go_template(chat_template: str) -> str | None:
    """The Ollama (Go template) form of a Jinja chat template: ChatML (Qwen) is known; ``None`` otherwise
    (Ollama then falls back to the template it detects from the GGUF)."""
    if "<|im_start|>" in chat_template and "<|im_end|>" in chat_template:
        return CHATML_TEMPLATE
    return None


def _stop_tokens(model_dir: Path, chat_template: str) -> list[str]:
    stops = ["<|im_end|>"] if "<|im_end|>" in chat_template else []
    try:
        cfg = json.loads((model_dir / "tokenizer_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        cfg = {}
    for key in ("eos_token", "pad_token"):
        value = cfg.get(key) if isinstance(cfg, dict) else None
        value = value.get("content") if isinstance(value, dict) else value
        if key == "eos_token" and isinstance(value, str) and value and value not in stops:
            stops.append(value)
    if "<|endoftext|>" not in stops and "<|im_start|>" in chat_template:
        stops.append("<|endoftext|>")
    return stops


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def modelfile_text(
    settings: Any,
    model_dir: Path,
    gguf_name: str,
    *,
    adapter_name: str | None = None,
    base_from: str | None = None,
) -> str:
    """The Modelfile for ``gguf_name`` beside it (or ``base_from`` + ``ADAPTER`` for a LoRA)."""
    template = _chat_template(model_dir)
    gen = settings.generation
    lines = [
        f"# xiaoshuo adapters export: {adapter_name or gguf_name}",
        f"FROM {base_from}" if base_from else f"FROM ./{gguf_name}",
    ]
    if base_from:
        lines.append(f"ADAPTER ./{gguf_name}")
    go = go_template(template)
    if go is not None:
        lines.append(f'TEMPLATE """{go}"""')
    system = str(getattr(settings.engine, "system_prompt", "") or "").strip()
    if system and '"""' not in system:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f"PARAMETER stop {_quoted(s)}" for s in _stop_tokens(model_dir, template)]
    lines += [
        f"PARAMETER temperature {gen.temperature}",
        f"PARAMETER top_p {gen.top_p}",
        *([f"PARAMETER top_k {gen.top_k}"] if gen.top_k > 0 else []),
        f"PARAMETER repeat_penalty {gen.repetition_penalty}",
    ]
    return "\n".join(lines) + "\n"


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """Check a Modelfile's syntax as Ollama reads it; returns its (INSTRUCTION, argument) pairs.

    Rules: one instruction per line (``#`` comments and blank lines skipped), only known instructions
    (:data:`MODELFILE_INSTRUCTIONS`), exactly one ``FROM``, a ``\"\"\"`` argument closed by a later
    ``\"\"\"`` (it may span lines), a quoted argument closed, ``PARAMETER NAME VALUE`` with a known name and a
    value of its kind, a ``TEMPLATE`` whose ``{{ }}`` actions are balanced and whose ``if``/``range``/``with``
    blocks each have an ``end``.  Raises :class:`ExportError` naming the line."""
    out: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line, number = lines[i].strip(), i + 1
        i += 1
        if not line or line.startswith("#"):
            continue
        word, _, arg = line.partition(" ")
        instruction = word.upper()
        if instruction not in MODELFILE_INSTRUCTIONS:
            raise _syntax(
                number, f"unknown instruction {word!r}", "one of " + ", ".join(MODELFILE_INSTRUCTIONS)
            )
        arg = arg.strip()
        if arg.startswith('"""'):
            body = arg[3:]
            while '"""' not in body:
                if i >= len(lines):
                    raise _syntax(number, 'unclosed """', 'a closing """')
                body += "\n" + lines[i]
                i += 1
            value, _, rest = body.partition('"""')
            if rest.strip():
                raise _syntax(number, f'text after the closing """: {rest.strip()!r}', "nothing")
            arg = value
        elif arg.startswith('"'):
            try:
                arg = json.loads(arg)
            except ValueError:
                raise _syntax(
                    number, f"badly quoted argument {arg!r}", "a closed double-quoted string"
                ) from None
        if not arg:
            raise _syntax(number, f"{instruction} without an argument", "an argument")
        if instruction == "PARAMETER":
            _check_parameter(number, arg)
        if instruction == "TEMPLATE":
            _check_go_template(number, arg)
        out.append((instruction, arg))
    froms = [a for k, a in out if k == "FROM"]
    if len(froms) != 1:
        raise _syntax(0, f"{len(froms)} FROM instructions", "exactly one FROM")
    return out


def _syntax(line: int, received: str, expected: str) -> ExportError:
    where = f"line {line}: " if line else ""
    return ExportError(
        "Modelfile 语法错误 (Modelfile syntax error)", expected=expected, received=where + received
    )


def _check_parameter(number: int, arg: str) -> None:
    name, _, value = arg.partition(" ")
    kind = MODELFILE_PARAMETERS.get(name)
    if kind is None:
        raise _syntax(number, f"unknown parameter {name!r}", "one of " + ", ".join(MODELFILE_PARAMETERS))
    value = value.strip()
    if not value:
        raise _syntax(number, f"PARAMETER {name} without a value", "a value")
    if kind is str:
        if value.startswith('"'):
            try:
                json.loads(value)
            except ValueError:
                raise _syntax(
                    number, f"badly quoted value {value!r}", "a closed double-quoted string"
                ) from None
        return
    try:
        kind(value)
    except ValueError:
        raise _syntax(number, f"{name} {value!r}", f"a {kind.__name__}") from None


def _check_go_template(number: int, template: str) -> None:
    if template.count("{{") != template.count("}}"):
        raise _syntax(number, "unbalanced {{ }} in TEMPLATE", "every {{ closed by }}")
    depth = 0
    for action in re.findall(r"\{\{-?\s*(.*?)\s*-?\}\}", template, flags=re.S):
        head = action.split(" ", 1)[0]
        if head in ("if", "range", "with", "block", "define"):
            depth += 1
        elif head == "end":
            depth -= 1
            if depth < 0:
                raise _syntax(number, "{{ end }} without an open block in TEMPLATE", "if/range/with … end")
    if depth:
        raise _syntax(number, f"{depth} TEMPLATE block(s) without {{{{ end }}}}", "if/range/with … end")


# ---------------------------------------------------------------------------- stages
def verify_gguf(settings: Any, model: Path | str, lora: Path | None) -> tuple[list[int], str, Path]:
    """Load ``model`` (a GGUF, or a model folder the engine converts) in the llamacpp engine, with the GGUF
    LoRA ``lora`` if given, and generate :data:`VERIFY_TOKENS` greedy tokens; (ids, text, model GGUF)."""
    from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine

    small = settings.model_copy(
        update={"model": settings.model.model_copy(update={"vllm_max_model_len": 512})}
    )
    greedy = SamplingSettings(
        temperature=0.0, max_tokens=VERIFY_TOKENS, repetition_penalty=1.0, ignore_eos=True
    )
    adapters = {"export": str(lora)} if lora is not None else None
    try:
        with load_engine(small, backend="llamacpp", model=str(model), lora=adapters) as engine:
            result = engine.generate(
                GenerationRequest(prompt=VERIFY_PROMPT, sampling=greedy, lora="export" if lora else None)
            )
            model_file = Path(getattr(engine, "model_file", model))
    except DependencyError:
        raise
    except XiaoshuoError as exc:
        raise _not_loading(model, lora, f"{exc.message} {exc.received or ''}".strip()) from None
    except Exception as exc:  # llama.cpp reports a bad file as ValueError/RuntimeError
        raise _not_loading(model, lora, f"{type(exc).__name__}: {exc}") from None
    candidate = result.candidates[0]
    if not candidate.token_ids:
        raise _not_loading(model, lora, "it loaded but generated no token")
    return list(candidate.token_ids), candidate.text, model_file


def _not_loading(model: Path | str, lora: Path | None, why: str) -> ExportError:
    return ExportError(
        "导出的 GGUF 无法在 llama.cpp 中加载或生成 (the exported GGUF does not load in llama.cpp)",
        expected="a GGUF that llama-cpp-python loads and generates from",
        received=f"{lora or model}: {why}",
        fix="检查基础模型与 llama-cpp-python 版本；可试 --quant F16 (check the base model; try --quant F16)",
    )


def _remove_dead_work(out_dir: Path) -> None:
    """Remove the work folders that killed exports left in ``out_dir`` (their process is gone)."""
    from xiaoshuo.writing.importing import pid_alive

    for child in out_dir.glob(f"{WORK_PREFIX}*-*"):
        pid = child.name[len(WORK_PREFIX) :].split("-", 1)[0]
        if child.is_dir() and not child.is_symlink() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)


def _timed(seconds: dict[str, float], stage: str, started: float) -> None:
    seconds[stage] = round(time.monotonic() - started, 2)


def export_gguf(
    settings: Any,
    name_or_folder: str,
    *,
    quant: str = DEFAULT_QUANT,
    output: str | Path | None = None,
    ollama: bool = False,
    lora_only: bool = False,
    overwrite: bool = False,
    base: str | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export an adapter (a trained name or a peft folder) as a verified GGUF; see the module docstring."""
    from xiaoshuo.adapters import ensure_merged
    from xiaoshuo.adapters.merged import local_model_dir
    from xiaoshuo.engine.llamacpp_backend import import_llama_cpp
    from xiaoshuo.gguf_convert import convert_hf_to_gguf, convert_lora_to_gguf, quantize_gguf
    from xiaoshuo.writing.exporting import check_target, place_export, protected_folders, write_export

    say = progress or (lambda stage, message: None)
    quant = quant.upper()
    if quant not in QUANTS:
        raise ExportError(
            "不支持的量化类型 (unsupported quantization)", expected=" / ".join(QUANTS), received=quant
        )
    import_llama_cpp()  # fails first, naming `make llamacpp`, when llama-cpp-python is missing
    if not logging.getLogger("xiaoshuo").isEnabledFor(logging.DEBUG):
        # the quantizer logs a line per tensor via llama-cpp-python's logger: quiet, as Llama(verbose=False)
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    name, adapter, base_model = _adapter_and_base(settings, name_or_folder, base)
    base_dir = local_model_dir(base_model)
    _check_architecture(base_dir)

    out_dir = (
        Path(output).expanduser() if output else Path(settings.paths.data_dir) / "exports" / f"{name}-gguf"
    )
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(
            "--output 应是一个目录 (--output must be a folder)",
            expected="a folder (new or existing)",
            received=f"{out_dir}: not a folder",
            fix="--output 换一个目录",
        )
    file_name = f"{name}-lora.gguf" if lora_only else f"{name}-{quant}.gguf"
    protected, allowed = protected_folders(settings)
    targets = [out_dir / file_name] + ([out_dir / MODELFILE] if ollama else [])
    for target in targets:  # every target checked before minutes of work
        check_target(target, overwrite=overwrite, protected=protected, allowed=allowed)

    seconds: dict[str, float] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_dead_work(out_dir)
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=out_dir))
    try:
        if lora_only:
            started = time.monotonic()
            say("convert", f"适配器 → GGUF LoRA (adapter → GGUF LoRA): {adapter}")
            part = convert_lora_to_gguf(adapter, work / file_name, base_dir)
            _timed(seconds, "convert", started)
            started = time.monotonic()
            say("verify", "在基础模型上加载并生成 (loading on the base model's GGUF and generating) …")
            tokens, text, base_gguf = verify_gguf(settings, base_dir, part)
            _timed(seconds, "verify", started)
            model_dir, result_quant = base_dir, "LoRA F32"
        else:
            started = time.monotonic()
            say("merge", f"合并适配器 (merging) {adapter} → {base_dir}")
            merged = ensure_merged(
                Path(settings.paths.models_dir), str(base_dir), adapter, progress=lambda m: say("merge", m)
            )
            _timed(seconds, "merge", started)
            started = time.monotonic()
            say("convert", f"合并模型 → GGUF F16 (merged model → GGUF F16): {merged.path}")
            f16 = convert_hf_to_gguf(merged.path, work / (file_name if quant == "F16" else "f16.gguf"))
            _timed(seconds, "convert", started)
            part = f16
            if quant != "F16":
                started = time.monotonic()
                say("quantize", f"量化为 {quant} (quantizing to {quant}) …")
                part = quantize_gguf(f16, work / file_name, quant)
                f16.unlink()
                _timed(seconds, "quantize", started)
            started = time.monotonic()
            say("verify", "加载并生成几个词元 (loading and generating a few greedy tokens) …")
            tokens, text, _ = verify_gguf(settings, part, None)
            _timed(seconds, "verify", started)
            base_gguf, model_dir, result_quant = None, merged.path, quant
        gguf = place_export(settings, part, out_dir / file_name, overwrite=overwrite)
        result = ExportResult(
            name=name,
            output_dir=out_dir,
            gguf=gguf,
            quant=result_quant,
            seconds=seconds,
            verify_tokens=tokens,
            verify_text=text,
            base_gguf=base_gguf,
            merged_dir=None if lora_only else model_dir,
        )
        if ollama:
            base_from = str(base_gguf) if base_gguf is not None else None
            text_mf = modelfile_text(settings, model_dir, file_name, adapter_name=name, base_from=base_from)
            parse_modelfile(text_mf)
            result.modelfile = write_export(
                settings, out_dir / MODELFILE, text_mf.encode("utf-8"), overwrite=overwrite
            )
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summary(result: ExportResult) -> list[str]:
    """The final message's lines: the file, its size, the stage times, the verify text, how to use it."""
    mib = result.bytes / 2**20
    times = ", ".join(f"{stage} {s:.1f} s" for stage, s in result.seconds.items())
    lines = [
        f"已导出 exported: {result.gguf} ({result.quant}, {mib:.1f} MiB)",
        f"用时 times: {times} (total {sum(result.seconds.values()):.1f} s)",
        f"验证 verified: {len(result.verify_tokens)} greedy tokens → {result.verify_text!r}",
    ]
    if result.modelfile is not None:
        lines.append(f"Ollama: {result.ollama_command()}")
    lines.append(f"llama-server: {result.llama_server_command()}")
    if result.base_gguf is None:
        lines.append(
            f"LM Studio: 把 {result.gguf.name} 复制到 LM Studio 的模型目录 (copy it into its models folder)"
        )
    return lines


def result_json(result: ExportResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "gguf": str(result.gguf),
        "quant": result.quant,
        "bytes": result.bytes,
        "seconds": result.seconds,
        "verify_tokens": result.verify_tokens,
        "verify_text": result.verify_text,
        "modelfile": str(result.modelfile) if result.modelfile else None,
        "ollama_command": result.ollama_command(),
        "llama_server_command": result.llama_server_command(),
        "base_gguf": str(result.base_gguf) if result.base_gguf else None,
    }
