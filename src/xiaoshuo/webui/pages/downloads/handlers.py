"""The model download panel's handlers: plain functions over ``Services`` — the progress in words, which
model the engine is missing, start / cancel / poll (a finished download becomes the engine's model).

The download runs in ``Services.downloads`` (:class:`xiaoshuo.webui.downloads.ModelDownload`).  Errors
are raised as ``XiaoshuoError`` (``layout.py`` wires every handler through ``webui.errors.guard``);
everything runs without a browser.  Not responsible for the layout (``layout.py``).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from xiaoshuo.webui.locale import t


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


def wanted(services: Any) -> str:
    """The model the panel offers: the missing one, else the configured base model."""
    return missing_model(services) or services.settings.model.base_model


def start_clicked(services: Any, lang: str, model_id: str | None, source: str) -> tuple:
    services.downloads.start(model_id, source)
    return progress_text(services.downloads.status(), lang), gr.Timer(active=True)


def cancel_clicked(services: Any, lang: str) -> tuple:
    services.downloads.cancel()
    return progress_text(services.downloads.status(), lang), gr.Timer(active=False)


def poll(services: Any, lang: str) -> tuple:
    """The timer's tick: the progress, the timer (on while the pull runs); a finished download is loaded."""
    job = services.downloads
    path = job.take_finished()
    if path:  # the page switches to the model as soon as it is there
        engine = services.engine
        engine.restart(model=path, backend=engine.backend, lora=engine.lora)
    st = job.status()
    return progress_text(st, lang), gr.Timer(active=job.running() or st.get("state") == "starting")
