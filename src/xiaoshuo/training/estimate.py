"""Before a run: how much text a style adapter needs, and about how long training takes on this machine.

* :func:`model_params` — a model's parameter count without loading it: the safetensors headers (a
  local folder), the catalogue's download size (a hub id), or the size in its name (``…-1.5B-…``).
* :func:`measured_rate` — training tokens per second *measured on this machine*: the last ``log`` event
  of the newest earlier run of the same base model (``logs/train-<run>.jsonl``, written by
  :mod:`xiaoshuo.training.events`; a run stopped after a few steps counts).
* :func:`this_device`, :func:`hardware_rate` — a rough rate from the hardware facts when nothing was measured:
  ``FLOPS_PER_PARAM_TOKEN`` × parameters per token over ``GPU_TFLOPS`` × ``GPU_UTILISATION`` (by GPU name)
  or ``CPU_GFLOPS_PER_CORE`` × cores.
* :func:`data_needs` — the least and the recommended amount of text (字) for the configured chunk size,
  batch, accumulation and epochs: enough samples for ``MIN_STEPS`` / ``GOOD_STEPS`` optimizer steps.
* :func:`text_amount` — how much text there is: exact from ``prepare``'s manifest, else guessed from the
  uploaded files' sizes.
* :func:`estimate` — all of it for one form: steps, tokens, seconds and where the rate came from.

Numbers only: the wording is the 训练 page's (``webui/pages/train``).  Not responsible for training
(:mod:`xiaoshuo.training.run`), preparing data (:mod:`xiaoshuo.data`) or the machine facts
(:mod:`xiaoshuo.hardware`, asked here).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: 字 per token when no prepared data says otherwise: Qwen2.5's tokenizer on modern Chinese prose
#: (about 1.3–1.5; ``prepare``'s manifest gives the real ratio of the author's text).
CHARS_PER_TOKEN = 1.4
#: The least optimizer steps over the configured epochs for an adapter to pick up a style at all …
MIN_STEPS = 20
#: … and the steps from which it reliably writes like the books (more rarely helps a LoRA adapter).
GOOD_STEPS = 100
#: Training cost per parameter and token: forward 2, the forward again under gradient checkpointing 2,
#: backward through the activations 2 (LoRA skips the frozen weights' own gradients, another 2).
FLOPS_PER_PARAM_TOKEN = 6
FLOPS_PER_PARAM_TOKEN_NO_CHECKPOINTING = 4
#: Dense bf16 tensor throughput (TFLOP/s, the vendors' data sheets) by a part of the GPU's name.
GPU_TFLOPS: dict[str, float] = {
    "H200": 989,
    "H100": 756,
    "A100": 312,
    "L40S": 362,
    "A6000": 155,
    "A10": 125,
    "L4": 121,
    "4090": 165,
    "4080": 97,
    "3090": 71,
    "3080": 59,
    "V100": 125,
    "T4": 65,
}
#: A GPU not in the table.
GPU_TFLOPS_UNKNOWN = 30.0
#: The share of that peak small-batch LoRA training reaches (short sequences, adapters, optimizer).
GPU_UTILISATION = 0.3
#: What PyTorch's fp32 CPU training reaches per core: ``bench/bench_train_rate.py`` measured 35 GFLOP/s on one
#: thread of a Xeon with AVX-512 (a 77M Qwen2-shaped model, LoRA on every linear layer, checkpointing); 20
#: allows for laptops' AVX2 and for threads that scale below linearly.
CPU_GFLOPS_PER_CORE = 20.0
#: Seconds a run spends besides its steps: loading the model and the data, the last evaluation, saving.
STARTUP_SECONDS = 60.0
#: UTF-8 bytes per 字 of a plain-text file; an EPUB (zip) holds about 2/3 字 per byte.
TXT_BYTES_PER_CHAR = 3.0
EPUB_CHARS_PER_BYTE = 2 / 3

_SIZE_IN_NAME = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([BbMm])(?![A-Za-z])")


@dataclass(frozen=True)
class Needs:
    """The least and the recommended text (字), and the samples / steps they stand for."""

    min_chars: int
    good_chars: int
    tokens_per_sample: int
    chars_per_token: float


@dataclass(frozen=True)
class Amount:
    """How much training text there is: 字, tokens, samples; ``exact`` when ``prepare`` counted it."""

    chars: int
    tokens: int
    samples: int
    exact: bool
    files: int


@dataclass(frozen=True)
class Estimate:
    amount: Amount
    needs: Needs
    steps: int  # optimizer steps of the run
    tokens_trained: int  # tokens the run processes (every epoch)
    params: int | None  # the base model's parameters
    rate: float | None  # tokens per second
    source: str  # "measured" (an earlier run here), "hardware" (a rough figure) or "unknown"
    measured_run: str | None
    device: Device
    seconds: float | None

    @property
    def enough(self) -> str:
        """``"none"`` / ``"little"`` (< minimum) / ``"ok"`` / ``"good"`` (≥ recommended)."""
        if self.amount.chars <= 0:
            return "none"
        if self.amount.chars < self.needs.min_chars:
            return "little"
        return "good" if self.amount.chars >= self.needs.good_chars else "ok"


# ----------------------------------------------------------------------------- the model
def model_params(model: str, models_dir: Path | str | None = None) -> int | None:
    """Parameters of ``model`` (a folder or hub id) without loading it; None when nothing tells."""
    from xiaoshuo.model_names import find_local

    folder = find_local(model, models_dir) if models_dir is not None else None
    if folder is None and Path(model).expanduser().is_dir():
        folder = Path(model).expanduser()
    if folder is not None:
        found = _params_on_disk(folder)
        if found:
            return found
    from xiaoshuo.models import CATALOGUE, GIB

    card = CATALOGUE.get(model)
    if card is not None:
        return int(card.size_gib * GIB / 2)  # bf16 weights
    match = _SIZE_IN_NAME.search(Path(model).name)
    if match:
        return int(float(match.group(1)) * (1e9 if match.group(2) in "Bb" else 1e6))
    return None


def _params_on_disk(folder: Path) -> int | None:
    """Counted from the safetensors headers (every tensor's shape; a few kB read per file), else from
    the weights' size over the bytes per parameter of ``torch_dtype``."""
    counted = [_safetensors_params(p) for p in sorted(folder.glob("*.safetensors"))]
    if counted and all(n is not None for n in counted):
        return sum(counted)  # type: ignore[arg-type]
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    size = size or sum(p.stat().st_size for p in folder.glob("pytorch_model*.bin"))
    if not size:
        return None
    try:
        config = json.loads((folder / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        config = {}
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    per = 4 if "32" in dtype else 1 if "8" in dtype else 2
    return size // per


#: A safetensors header larger than this is not one (the format caps it at 100 MB; real ones are kB).
_MAX_HEADER = 100 * 1024 * 1024


def _safetensors_params(path: Path) -> int | None:
    """The number of values in a ``.safetensors`` file, from its JSON header; None when it is not one."""
    try:
        with path.open("rb") as fh:
            length = int.from_bytes(fh.read(8), "little")
            if not 2 <= length <= _MAX_HEADER:
                return None
            header = json.loads(fh.read(length))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    return sum(
        math.prod(int(d) for d in entry.get("shape", []))
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict)
    )


# ----------------------------------------------------------------------------- the rate
def measured_rate(logs_dir: Path, base_model: str, *, newest: int = 20) -> tuple[float, str] | None:
    """``(tokens per second, run)`` of the newest earlier run of ``base_model`` on this machine.

    Reads the ``newest`` event logs (``train-*.jsonl``) by modification time; a run counts when its
    ``start`` event names the same base model (or a folder of the same name) and it logged a step.
    """
    try:
        logs = sorted(Path(logs_dir).glob("train-*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    want = _model_key(base_model)
    for path in logs[:newest]:
        base, rate = None, None
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue  # a line being written
                    if event.get("event") == "start":
                        base, rate = ((event.get("config") or {}).get("model") or {}).get("base_model"), None
                    elif event.get("event") == "log" and _positive(event.get("tokens_per_s")):
                        rate = float(event["tokens_per_s"])
        except OSError:
            continue
        if rate and base and _model_key(str(base)) == want:
            return rate, path.stem.removeprefix("train-")
    return None


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def _model_key(model: str) -> str:
    """A hub id and the folder ``model pull`` put it in (``…/Qwen/Qwen2.5-7B-Instruct``) are one model."""
    return Path(model.rstrip("/")).name.lower()


@dataclass(frozen=True)
class Device:
    """What trains: the largest GPU (``kind`` ``gpu``, its name and memory) or the CPU's ``cores``."""

    kind: str
    name: str
    gib: float
    cores: int


def this_device(gpus: tuple[dict[str, Any], ...] = (), cores: int | None = None) -> Device:
    """The largest of ``gpus`` (``xiaoshuo.hardware.gpu_memory()``'s rows), else the CPU."""
    cores = cores or os.cpu_count() or 1
    if gpus:
        gpu = max(gpus, key=lambda g: g.get("total_gib", 0))
        return Device("gpu", str(gpu.get("name", "")), float(gpu.get("total_gib", 0)), cores)
    return Device("cpu", "", 0.0, cores)


def hardware_rate(params: int, device: Device, *, checkpointing: bool = True) -> float:
    """A rough training rate (tokens per second) for a model of ``params`` parameters on ``device``."""
    per_token = params * (FLOPS_PER_PARAM_TOKEN if checkpointing else FLOPS_PER_PARAM_TOKEN_NO_CHECKPOINTING)
    if device.kind == "gpu":
        name = device.name.lower()
        peak = next((v for k, v in GPU_TFLOPS.items() if k.lower() in name), GPU_TFLOPS_UNKNOWN)
        return peak * 1e12 * GPU_UTILISATION / per_token
    return device.cores * CPU_GFLOPS_PER_CORE * 1e9 / per_token


# ----------------------------------------------------------------------------- the text
def data_needs(
    *,
    chunk_tokens: int,
    batch_size: int,
    grad_accum: int,
    epochs: float,
    val_split: float = 0.1,
    chars_per_token: float = CHARS_PER_TOKEN,
) -> Needs:
    """Enough samples (``chunk_tokens`` each, ``val_split`` of the books kept for validation) for
    ``MIN_STEPS`` and ``GOOD_STEPS`` optimizer steps of ``batch_size × grad_accum`` over ``epochs``."""
    per_step = max(1, batch_size) * max(1, grad_accum)

    def chars(steps: int) -> int:
        samples = math.ceil(steps * per_step / max(epochs, 1e-9))
        return int(samples * chunk_tokens * chars_per_token / (1 - val_split))

    return Needs(chars(MIN_STEPS), chars(GOOD_STEPS), chunk_tokens, chars_per_token)


def text_amount(data_dir: Path, raw_dir: Path, *, chunk_tokens: int) -> Amount:
    """The training text: ``prepare``'s manifest under ``data_dir`` when it is newer than every uploaded
    file, else a guess from the sizes of the files in ``raw_dir`` (``TXT_BYTES_PER_CHAR``, …)."""
    raw = [p for p in _files(raw_dir) if p.suffix.lower() in (".txt", ".json", ".jsonl", ".epub")]
    manifest = _manifest(data_dir)
    newest_raw = max((p.stat().st_mtime for p in raw), default=0.0)
    if manifest is not None and manifest[1] >= newest_raw:
        totals = manifest[0].get("totals", {})
        chars, tokens = int(totals.get("characters") or 0), int(totals.get("tokens") or 0)
        train_tokens = int(totals.get("train_tokens") or tokens)
        share = train_tokens / tokens if tokens else 1.0
        samples = int(totals.get("train_samples") or totals.get("samples") or 0)
        return Amount(int(chars * share), train_tokens, samples, True, int(totals.get("files_ok") or 0))
    chars = 0
    for path in raw:
        size = path.stat().st_size
        epub = path.suffix.lower() == ".epub"
        chars += int(size * EPUB_CHARS_PER_BYTE if epub else size / TXT_BYTES_PER_CHAR)
    tokens = int(chars / CHARS_PER_TOKEN)
    return Amount(chars, tokens, math.ceil(tokens / chunk_tokens) if tokens else 0, False, len(raw))


def _files(folder: Path) -> list[Path]:
    try:
        return [p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")]
    except OSError:
        return []


def _manifest(data_dir: Path) -> tuple[dict[str, Any], float] | None:
    path = Path(data_dir) / "prepared" / "manifest.json"
    try:
        return json.loads(path.read_text("utf-8")), path.stat().st_mtime
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- the whole
def estimate(
    settings: Any,
    *,
    base_model: str,
    epochs: float,
    batch_size: int,
    grad_accum: int,
    max_seq_length: int,
    max_steps: int | None = None,
    gpus: tuple[dict[str, Any], ...] | None = None,
    cores: int | None = None,
) -> Estimate:
    """Steps, tokens and seconds of a run of ``base_model`` with this form on the text there is now
    (``settings``: paths, ``data.chunk_size``, ``data.val_split``, ``training.gradient_checkpointing``);
    ``gpus`` / ``cores`` default to this machine's (:mod:`xiaoshuo.hardware`)."""
    p = settings.paths
    chunk = min(int(settings.data.chunk_size), int(max_seq_length))
    amount = text_amount(p.data_dir, p.raw_dir, chunk_tokens=chunk)
    ratio = amount.chars / amount.tokens if amount.exact and amount.tokens else CHARS_PER_TOKEN
    needs = data_needs(
        chunk_tokens=chunk,
        batch_size=batch_size,
        grad_accum=grad_accum,
        epochs=epochs,
        val_split=settings.data.val_split,
        chars_per_token=ratio,
    )
    per_step = max(1, batch_size) * max(1, grad_accum)
    per_sample = amount.tokens / amount.samples if amount.samples else chunk
    per_sample = min(per_sample, max_seq_length)
    if max_steps:
        steps = int(max_steps)
        tokens = int(steps * per_step * per_sample)
    else:
        steps = math.ceil(epochs * math.ceil(amount.samples / per_step)) if amount.samples else 0
        tokens = int(epochs * amount.samples * per_sample)
    if gpus is None:
        from xiaoshuo.hardware import gpu_memory

        gpus = gpu_memory()
    params = model_params(base_model, p.models_dir)
    measured = measured_rate(p.logs_dir, base_model)
    checkpointing = bool(settings.training.gradient_checkpointing)
    device = this_device(gpus, cores)
    if measured is not None:
        rate, source, run = measured[0], "measured", measured[1]
    elif params:
        rate, source, run = hardware_rate(params, device, checkpointing=checkpointing), "hardware", None
    else:
        rate, source, run = None, "unknown", None
    seconds = STARTUP_SECONDS + tokens / rate if rate and tokens else None
    return Estimate(amount, needs, steps, tokens, params, rate, source, run, device, seconds)
