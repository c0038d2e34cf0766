"""Model download from the 设置 tab: a ``xiaoshuo model pull --json-progress`` subprocess and its panel.

``ModelDownload`` starts the pull as its own process (like training: the UI never blocks on it),
reads its JSON progress lines on a thread, and cancels by terminating the process group — the
next pull resumes from the partial files.  ``download_panel`` builds the Gradio block (model id,
source, progress, start/cancel) and, when a download finishes, reloads the engine on the new folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t


class ModelDownload:
    """One download at a time; ``status()`` is what the panel shows."""

    def __init__(self, settings: Settings, config_file: Path | None = None) -> None:
        self.settings = settings
        self.lang = settings.webui.language
        self.config_file = config_file
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"state": "idle"}

    def command(self, model_id: str, source: str) -> list[str]:
        cmd = [sys.executable, "-m", "xiaoshuo"]
        if self.config_file:
            cmd += ["--config", str(self.config_file)]
        cmd += ["--set", f"paths.models_dir={self.settings.paths.models_dir}"]
        return [*cmd, "model", "pull", model_id, "--source", source, "--json-progress"]

    def env(self) -> dict[str, str]:
        """The pull's environment: the mirror travels here, not in argv (``ps`` shows argv to every user,
        and a mirror URL may hold a password)."""
        env = dict(os.environ)
        if self.settings.model.hf_endpoint:
            env["XIAOSHUO_MODEL__HF_ENDPOINT"] = self.settings.model.hf_endpoint
        return env

    def start(self, model_id: str, source: str = "auto") -> None:
        model_id = (model_id or "").strip()
        if not model_id:
            raise XiaoshuoError(t("set_dl_err_no_model", self.lang), expected="owner/name")
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise XiaoshuoError(
                    t("set_dl_err_running", self.lang), fix=t("set_dl_fix_running", self.lang)
                )
            self._state = {"state": "starting", "model": model_id, "source": source, "done": 0, "total": 0}
            self._proc = subprocess.Popen(
                self.command(model_id, source),
                env=self.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            proc = self._proc
        threading.Thread(target=self._read, args=(proc,), name="xiaoshuo-model-pull", daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        error = ""
        for line in proc.stdout:  # type: ignore[union-attr]
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.pop("event", "")
            with self._lock:
                if kind == "error":
                    error = event.get("message", "")
                elif kind == "done":
                    self._state.update(event, state="done")
                elif kind in ("plan", "progress") and self._state["state"] != "cancelled":
                    self._state.update(event, state="downloading")
        stderr = proc.stderr.read() if proc.stderr else ""  # type: ignore[union-attr]
        code = proc.wait()
        with self._lock:
            if self._state.get("state") in ("cancelled", "done"):
                return
            if code != 0:
                lines = [x for x in stderr.splitlines() if x.strip()]
                self._state.update(state="error", message=error or (lines[-1] if lines else f"exit {code}"))

    def cancel(self) -> None:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return
            self._state["state"] = "cancelled"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def take_finished(self) -> str | None:
        """The folder of a finished download, once (the panel then switches the engine to it)."""
        with self._lock:
            if self._state.get("state") == "done" and not self._state.get("taken"):
                self._state["taken"] = True
                return self._state.get("path")
        return None

    def running(self) -> bool:
        with self._lock:
            return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        self.cancel()


def progress_text(st: dict[str, Any], lang: str = "zh") -> str:
    """One Markdown line for the panel."""

    state = st.get("state", "idle")
    if state == "idle":
        return ""
    done, total = int(st.get("done") or 0), int(st.get("total") or 0)
    pct = f"{100 * done / total:.1f}%" if total else "…"
    size = f"{done / 1024**3:.2f} / {total / 1024**3:.2f} GiB" if total else ""
    if state == "starting":
        label = t("set_dl_starting", lang)
    elif state == "downloading":
        label = t("set_dl_downloading", lang, model=st.get("model"), pct=pct, size=size)
    elif state == "done":
        label = t("set_dl_done", lang, path=st.get("path", ""))
    elif state == "cancelled":
        label = t("set_dl_cancelled", lang, pct=pct)
    elif state == "error":
        label = t("set_dl_error", lang, message=st.get("message", ""))
    else:
        label = state
    why = "\n\n" + t("set_dl_why", lang, why=st["why"]) if st.get("why") else ""
    return f"**{label}**{why}"


def missing_model(services: Any) -> str | None:
    """The configured hub id when the engine cannot load because the model is not on disk."""
    from xiaoshuo.models import find_local, is_hub_id

    model = services.engine.model
    state, _ = services.engine.status()
    if state == "ready" or not is_hub_id(model) or find_local(model, services.settings.paths.models_dir):
        return None
    return model


def download_panel(services: Any, lang: str) -> None:
    """The 下载模型 block of the 设置 tab (inside the current ``gr.Blocks`` context)."""
    import gradio as gr

    from xiaoshuo.models import CATALOGUE, pull_command
    from xiaoshuo.webui.errors import as_gradio_error

    job: ModelDownload = services.downloads
    wanted = missing_model(services) or services.settings.model.base_model
    size = t("set_dl_size", lang, gib=CATALOGUE[wanted].size_gib) if wanted in CATALOGUE else ""
    with gr.Accordion(t("set_dl_title", lang), open=missing_model(services) is not None):
        gr.Markdown(
            t("set_dl_help", lang, size=size, command=pull_command(wanted)),
            elem_id="download-help",
        )
        with gr.Row():
            model_id = gr.Textbox(wanted, label=t("set_dl_model", lang), elem_id="download-model")
            source = gr.Dropdown(
                ["auto", "hf", "modelscope"],
                value=services.settings.model.source,
                label=t("set_dl_source", lang),
                elem_id="download-source",
            )
            start = gr.Button(t("set_dl_start", lang), variant="primary", elem_id="download-start")
            cancel = gr.Button(t("set_dl_cancel", lang), elem_id="download-cancel")
        progress = gr.Markdown(progress_text(job.status(), lang), elem_id="download-progress")
    timer = gr.Timer(1.0, active=job.running())

    def do_start(mid, src):
        try:
            job.start(mid, src)
        except XiaoshuoError as exc:
            raise as_gradio_error(exc) from None
        return progress_text(job.status(), lang), gr.Timer(active=True)

    def do_cancel():
        job.cancel()
        return progress_text(job.status(), lang), gr.Timer(active=False)

    def poll():
        path = job.take_finished()
        if path:  # the page switches to the model as soon as it is there
            engine = services.engine
            engine.restart(model=path, backend=engine.backend, lora=engine.lora)
        st = job.status()
        return progress_text(st, lang), gr.Timer(active=job.running() or st.get("state") == "starting")

    start.click(do_start, [model_id, source], [progress, timer], api_visibility="private")
    cancel.click(do_cancel, None, [progress, timer], api_visibility="private")
    timer.tick(poll, None, [progress, timer], api_visibility="private", show_progress="hidden")
