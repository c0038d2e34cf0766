"""Model downloads for the WebUI: ``ModelDownload`` runs ``xiaoshuo model pull --json-progress`` as its own
process (a :class:`xiaoshuo.webui.runtime.SubprocessJob`, like training: the UI never blocks on it), reads
its JSON progress lines on a thread, and cancels by terminating the process group — the next pull resumes
from the partial files.

Not responsible for the panel on the 设置 page (``pages/downloads``: the components, the progress in
words, switching the engine to a finished download) or for downloading itself (``xiaoshuo.models``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.runtime import SubprocessJob


class ModelDownload(SubprocessJob):
    """One download at a time; ``status()`` is what the panel shows."""

    def __init__(self, settings: Settings, config_file: Path | None = None) -> None:
        self.settings = settings
        self.lang = settings.webui.language
        self.config_file = config_file
        self._state: dict[str, Any] = {"state": "idle"}
        super().__init__(
            busy=lambda: XiaoshuoError(
                t("set_dl_err_running", self.lang), fix=t("set_dl_fix_running", self.lang)
            )
        )

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
            proc = self.launch(
                self.command(model_id, source),
                env=self.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            self._state = {"state": "starting", "model": model_id, "source": source, "done": 0, "total": 0}
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
            if not self.running():
                return
            self._state["state"] = "cancelled"
        self.terminate(timeout=10)

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

    def close(self) -> None:
        self.cancel()
