"""What a training run tells the world: a JSONL event log, a rich progress bar, clean stops.

``logs/train-<run>.jsonl`` gets one JSON object per line — ``start`` (with the full
config), ``log`` (every logging step: loss, lr, tokens/s, ETA), ``eval``,
``checkpoint``, then ``end``, ``stopped`` or ``error`` — flushed and fsynced so a
WebUI tailing it sees every line even if the process is killed.  SIGINT/SIGTERM
ask the trainer to save a checkpoint and stop.  This module does not train.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class EventLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": time.time(), **fields}
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def callback(self) -> TrainerCallback:
        return _EventCallback(self)


class _EventCallback(TrainerCallback):
    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._t0 = time.perf_counter()
        self._tokens0 = 0
        self._step0 = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()
        self._tokens0 = state.num_input_tokens_seen
        self._step0 = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "eval_loss" in logs:
            loss = logs["eval_loss"]
            self.log.write("eval", step=state.global_step, eval_loss=loss, perplexity=math.exp(min(loss, 50)))
            return
        if "loss" not in logs:
            return
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        done = state.global_step - self._step0
        eta = (state.max_steps - state.global_step) * elapsed / done if done else None
        self.log.write(
            "log",
            step=state.global_step,
            max_steps=state.max_steps,
            epoch=state.epoch,
            loss=logs["loss"],
            lr=logs.get("learning_rate"),
            grad_norm=logs.get("grad_norm"),
            tokens_per_s=(state.num_input_tokens_seen - self._tokens0) / elapsed,
            eta_s=eta,
        )

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.log.write("checkpoint", step=state.global_step, path=str(path))


class ProgressCallback(TrainerCallback):
    """A rich progress bar with loss, lr, tokens/s and ETA (on stderr)."""

    def __init__(self) -> None:
        self._progress = None
        self._task = None
        self._t0 = 0.0
        self._tokens0 = 0

    def on_train_begin(self, args, state, control, **kwargs):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]训练 train[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
        )
        self._progress.start()
        self._task = self._progress.add_task("", total=state.max_steps, completed=state.global_step)
        self._t0 = time.perf_counter()
        self._tokens0 = state.num_input_tokens_seen

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._progress is None or not logs or "loss" not in logs:
            return
        rate = (state.num_input_tokens_seen - self._tokens0) / max(time.perf_counter() - self._t0, 1e-9)
        lr = logs.get("learning_rate") or 0.0
        self._progress.update(
            self._task,
            completed=state.global_step,
            description=f"loss {logs['loss']:.4f}  lr {lr:.2e}  {rate:.0f} tok/s",
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class StopOnSignal(TrainerCallback):
    """SIGINT/SIGTERM: save a checkpoint at the end of the current step, then stop."""

    def __init__(self) -> None:
        self.stopped = False
        self._requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):
            self._requested = True

        for sig in previous:
            signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def on_step_end(self, args, state, control, **kwargs):
        if self._requested:
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control
