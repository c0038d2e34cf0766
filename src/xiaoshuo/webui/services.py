"""What the WebUI talks to: the engine (loaded in the background), the memory store, 随手写's scratch
texts, uploads and training jobs.  One ``Services`` object per app, passed explicitly — no module globals.

Training never runs in the UI process: ``TrainingJobs`` (a :class:`xiaoshuo.webui.runtime.SubprocessJob`)
starts ``xiaoshuo train`` as a subprocess and tails its JSONL event log.  随手写's texts are stored by
:mod:`xiaoshuo.writing.scratch` (``data/scratch/``, never a book's chapter); the old ``data/stories/``
moves there once, when ``Services`` starts.  This module holds state and calls the Python API; the Gradio
layout is in the page folders (``webui/pages``), the shared run-time helpers in ``webui/runtime.py``.  Its
user-visible strings are in the locale table (``svc_*`` keys, language ``webui.language``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings, mask_url
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.runtime import SubprocessJob

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 500 * 1024 * 1024
UPLOAD_EXTENSIONS = {".txt", ".json", ".jsonl", ".epub"}


class EngineHolder:
    """Loads the engine on a background thread; the page works (minus generation) meanwhile."""

    def __init__(self, settings: Settings, *, model: str | None, backend: str | None, lora: dict[str, str]):
        self.settings = settings
        self._engine = None
        self._state = "loading"
        self._message = ""
        self._failure: XiaoshuoError | None = None  # why the last load failed, as raised
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.start(model=model, backend=backend, lora=lora)

    @property
    def _lang(self) -> str:
        return self.settings.webui.language

    def start(self, *, model: str | None, backend: str | None, lora: dict[str, str]) -> None:
        from xiaoshuo.model_names import resolve_model  # the resolver of model.base_model and --model

        model = resolve_model(model, self.settings.paths.models_dir)
        self.model, self.backend, self.lora = model or self.settings.model.base_model, backend, dict(lora)
        with self._lock:
            self._state, self._message = "loading", t("svc_loading", self._lang, model=self.model)
            self._failure = None
        self._thread = threading.Thread(target=self._load, name="xiaoshuo-engine-loader", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        from xiaoshuo.engine import load_engine

        try:
            self._check_downloaded()
            engine = load_engine(self.settings, backend=self.backend, model=self.model, lora=self.lora)
        except Exception as exc:
            with self._lock:
                self._state = "error"
                self._message = str(exc) if isinstance(exc, XiaoshuoError) else f"{type(exc).__name__}: {exc}"
                if "xiaoshuo model pull" not in self._message:
                    self._message += _download_hint(self.model, self.settings)
                self._failure = exc if isinstance(exc, XiaoshuoError) else None
            return
        with self._lock:
            self._engine, self._state = engine, "ready"
            self._message = t("svc_ready", self._lang, backend=engine.backend, model=self.model) + (
                f" · LoRA: {', '.join(engine.adapters)}" if engine.adapters else ""
            )

    def _check_downloaded(self) -> None:
        """A hub model that is not on disk is not fetched silently in the background (gigabytes, no
        progress): the page offers 设置 → 下载模型 instead."""
        from xiaoshuo.hf import cached
        from xiaoshuo.models import ModelError, find_local, is_hub_id, pull_command

        if (self.backend or self.settings.engine.backend) == "openai" or not is_hub_id(self.model):
            return
        if find_local(self.model, self.settings.paths.models_dir) or cached(self.model, "config.json"):
            return
        raise ModelError(
            t("svc_not_downloaded", self._lang, model=self.model),
            expected=f"{self.model} under {self.settings.paths.models_dir} or in the Hugging Face cache",
            received="not found locally",
            fix=t("svc_not_downloaded_fix", self._lang, command=pull_command(self.model)),
        )

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> tuple[str, str]:
        with self._lock:
            return self._state, self._message

    def get(self):
        with self._lock:
            if self._engine is not None:
                return self._engine
            state, message, failure = self._state, self._message, self._failure
        lang = self._lang
        if state == "error" and failure is not None:  # the loader's own what/expected/received/fix
            raise XiaoshuoError(
                f"{t('svc_load_failed', lang)}: {failure.message}",
                expected=failure.expected,
                received=failure.received,
                fix=failure.fix or t("svc_reload_fix", lang),
            )
        raise XiaoshuoError(
            t("svc_not_ready", lang) if state == "loading" else t("svc_load_failed", lang),
            received=message,
            fix=t("svc_wait_fix", lang),
        )

    def loading(self) -> bool:
        with self._lock:
            return self._engine is None and self._state == "loading"

    def restart(self, *, model: str | None, backend: str | None, lora: dict[str, str]) -> None:
        self.wait()
        with self._lock:
            old, self._engine = self._engine, None
        if old is not None:
            old.close()
        self.start(model=model, backend=backend, lora=lora)

    def close(self) -> None:
        self.wait(timeout=600)
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()


def _download_hint(model: str, settings: Settings) -> str:
    """For a hub id that is not on disk: where to get it (the 设置 tab's download, or the command)."""
    from xiaoshuo.models import find_local, is_hub_id, pull_command

    if not is_hub_id(model) or find_local(model, settings.paths.models_dir) is not None:
        return ""
    return t("svc_download_hint", settings.webui.language, command=pull_command(model))


def safe_upload_name(name: str) -> str:
    """A file name with no directories, no traversal, no control characters, at most
    ``files.MAX_NAME_BYTES`` of UTF-8 (shortened by whole characters, extension kept)."""
    from xiaoshuo.webui.files import fit_name

    base = os.path.basename(name.replace("\\", "/"))
    base = re.sub(r"[\x00-\x1f<>:\"|?*]", "_", base).strip().lstrip(".")
    return fit_name(base, fallback="upload") if base else "upload.txt"


def save_uploads(paths: list[str], raw_dir: Path, *, lang: str = "zh") -> list[str]:
    """Copy uploaded files into ``raw_dir``: extension and size checked, names sanitised."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    messages = []
    for src in paths:
        original = getattr(src, "orig_name", None) or os.path.basename(str(src))
        name = safe_upload_name(str(original))
        ext = Path(name).suffix.lower()
        size = os.path.getsize(src)
        if ext not in UPLOAD_EXTENSIONS:
            shown = ext or t("svc_upload_no_ext", lang)
            messages.append(t("svc_upload_bad_ext", lang, name=original, ext=shown))
            continue
        if size > MAX_UPLOAD_BYTES:
            mb, limit = f"{size / 1e6:.0f}", f"{MAX_UPLOAD_BYTES / 1e6:.0f}"
            messages.append(t("svc_upload_too_big", lang, name=original, size=mb, limit=limit))
            continue
        target = (raw_dir / name).resolve()
        if raw_dir.resolve() not in target.parents:
            messages.append(t("svc_upload_bad_name", lang, name=original))
            continue
        shutil.copyfile(src, target)
        messages.append(t("svc_upload_ok", lang, name=original, target=target.name, size=f"{size / 1e3:.1f}"))
    return messages


class TrainingJobs(SubprocessJob):
    """``xiaoshuo train`` subprocesses (one at a time) and their event logs."""

    def __init__(self, settings: Settings, config_file: Path | None) -> None:
        self.settings = settings
        self.config_file = config_file
        self.run: str | None = None
        self._log_offset = 0  # where this job's lines start in its (appended-to) event log
        lang = settings.webui.language
        super().__init__(
            busy=lambda: XiaoshuoError(t("svc_train_running", lang), fix=t("svc_train_running_fix", lang))
        )

    def command(self, form: dict[str, Any], *, resume: str | None = None) -> list[str]:
        p = self.settings.paths
        cmd = [sys.executable, "-m", "xiaoshuo"]
        if self.config_file:
            cmd += ["--config", str(self.config_file)]
        cmd += [
            "--set",
            f"paths.data_dir={p.data_dir}",
            "--set",
            f"paths.checkpoints_dir={p.checkpoints_dir}",
            "--set",
            f"paths.logs_dir={p.logs_dir}",
            "--set",
            f"model.base_model={form['base_model']}",
            "train",
        ]
        cmd += [
            "--epochs",
            str(form["epochs"]),
            "--batch-size",
            str(int(form["batch_size"])),
            "--grad-accum",
            str(int(form["grad_accum"])),
            "--lr",
            str(form["lr"]),
            "--lora-r",
            str(int(form["lora_r"])),
            "--max-seq-length",
            str(int(form["max_seq_length"])),
            "--qlora" if form["qlora"] else "--no-qlora",
        ]
        if form.get("max_steps"):
            cmd += ["--max-steps", str(int(form["max_steps"]))]
        if form.get("save_steps"):
            cmd += [
                "--save-steps",
                str(int(form["save_steps"])),
                "--eval-steps",
                str(int(form["save_steps"])),
            ]
        if form.get("logging_steps"):
            cmd += ["--logging-steps", str(int(form["logging_steps"]))]
        if resume:
            cmd += ["--resume", resume]
        else:
            cmd += ["--run", form["run"]]
        return cmd

    def start(self, form: dict[str, Any], *, resume: str | None = None) -> str:
        cmd = self.command(form, resume=resume)
        with self._lock:
            if self.running():
                raise self._busy()
            self.run = Path(resume).name if resume else form["run"]
            log_dir = self.settings.paths.logs_dir
            log_dir.mkdir(parents=True, exist_ok=True)
            try:  # a resumed run (or a reused name) appends: show only this job's events
                self._log_offset = self._log_path().stat().st_size
            except FileNotFoundError:
                self._log_offset = 0
            with (log_dir / f"train-{self.run}.stderr.log").open("ab") as out:  # the child keeps its copy
                self.launch(cmd, stdout=out, stderr=subprocess.STDOUT)
        return shlex.join(cmd)

    def _log_path(self) -> Path:
        return self.settings.paths.logs_dir / f"train-{self.run}.jsonl"

    def stop(self) -> None:
        """Ask the trainer to stop: it saves a checkpoint, then exits (its process only, not its group)."""
        self.signal(signal.SIGTERM, group=False)

    def events(self) -> list[dict[str, Any]]:
        if not self.run:
            return []
        try:
            with self._log_path().open("rb") as fh:
                fh.seek(self._log_offset)
                lines = fh.read().decode("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a line being written
        return events

    def resumable(self) -> list[str]:
        root = self.settings.paths.checkpoints_dir
        return sorted(str(p.parent) for p in root.glob("*/run.json") if any(p.parent.glob("checkpoint-*")))

    def close(self) -> None:
        self.stop()


class Services:
    def __init__(
        self,
        settings: Settings,
        *,
        model: str | None = None,
        backend: str | None = None,
        lora: dict[str, str] | None = None,
        config_file: Path | None = None,
        engine: EngineHolder | None = None,
        demo: bool = False,
    ) -> None:
        from xiaoshuo.webui.downloads import ModelDownload

        self.settings = settings
        self.demo = demo  # `xiaoshuo webui --demo`: a random tiny model, a banner says so
        # ``engine``: share an already loading/loaded holder (tests, several apps over one engine)
        self.engine = engine or EngineHolder(settings, model=model, backend=backend, lora=lora or {})
        from xiaoshuo.writing.scratch import Scratch, migrate_stories

        migrate_stories(settings.paths.data_dir)  # once per data folder, recorded; never touches a novel
        self.scratch = Scratch.from_settings(settings)
        self.jobs = TrainingJobs(settings, config_file)
        self.downloads = ModelDownload(settings, config_file)
        self._store = None
        self._store_error: str | None = None
        self._store_lock = threading.Lock()

    def store(self):
        from xiaoshuo.memory import MemoryStore

        with self._store_lock:
            if self._store is None:
                self._store = MemoryStore(self.settings)
            return self._store

    def novels(self) -> list[str]:
        names = set(self.scratch.names()) | {"default"}
        with contextlib.suppress(XiaoshuoError):  # a locked store still lets the page open
            names |= set(self.store().novels())
        return sorted(names)

    def memory_stats(self, novel: str) -> dict[str, Any]:
        """What ``xiaoshuo memory list`` counts, for the 记忆 page: entries per kind, models, where."""
        from xiaoshuo.memory import KINDS

        store = self.store()
        mem = self.settings.memory
        stats: dict[str, Any] = {
            "novel": novel,
            "novels": store.novels(),
            "embedding_model": mem.embedding_model,
            "store": mask_url(mem.chroma_url) or str(store.path),
        }
        try:
            stats["by_kind"] = {kind: store.count(novel, kind=kind) for kind in KINDS}
            stats["entries"] = sum(stats["by_kind"].values())
        except XiaoshuoError as exc:  # e.g. indexed with another embedding model: say so, offer reindex
            stats["error"] = str(exc)
        return stats

    def adapters(self) -> list[str]:
        """Adapter choices for the page: the served names on an ``openai`` engine (the server's
        ``/v1/models``), the trained adapters under ``checkpoints/`` otherwise."""
        engine = self._ready_engine()
        if engine is not None and engine.backend == "openai":
            return engine.served_adapters()  # the server's /v1/models
        from xiaoshuo.adapters import list_adapters

        return [a.name for a in list_adapters(self.settings.paths.checkpoints_dir)]

    def lora_for(self, engine: Any, adapter: str | None) -> str | None:
        """What a request sends for the chosen adapter: the served name (openai) or the adapter folder."""
        from xiaoshuo.adapters import adapter_dir, is_none

        if is_none(adapter):
            return None
        if engine.backend == "openai" or adapter in engine.adapters:
            return adapter
        return str(adapter_dir(self.settings.paths.checkpoints_dir, adapter))

    def _ready_engine(self):
        try:
            return self.engine.get()
        except XiaoshuoError:
            return None

    def close_store(self) -> None:
        """Release the memory store (and its lock on the store path); the next use reopens it."""
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def close(self) -> None:
        self.jobs.close()
        self.downloads.close()
        self.engine.close()
        self.close_store()
