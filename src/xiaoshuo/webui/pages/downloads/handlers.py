"""The model download panel's handlers: plain functions over ``Services`` — the progress in words, which
model the engine is missing, start / cancel / poll (a finished download becomes the engine's model).

The panel offers the missing model, else the one ``auto`` means on this machine
(:func:`xiaoshuo.model_names.auto_model`, worded here with the facts it decides on), and the catalogue's
other language models — never a local folder such as the demo's temporary model.  The download runs in
``Services.downloads`` (:class:`xiaoshuo.webui.downloads.ModelDownload`).  Errors
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


def recommended(gpus: tuple[dict[str, Any], ...] | None = None) -> str:
    """The model ``auto`` means on this machine (``model_names.auto_model``: the one decision)."""
    from xiaoshuo.model_names import auto_model

    return auto_model("llm", gpus)[0]


def wanted(services: Any, gpus: tuple[dict[str, Any], ...] | None = None) -> str:
    """The model the panel offers: the missing one, else the recommended one for this machine — never the
    configured model's folder (the demo's temporary model is a path, not something to download)."""
    return missing_model(services) or recommended(gpus)


def choices(
    services: Any, lang: str, gpus: tuple[dict[str, Any], ...] | None = None
) -> list[tuple[str, str]]:
    """``(label, hub id)`` for the panel's list: the missing model first, then the catalogue's language
    models from the smallest, each with its download size; the recommended one is marked."""
    from xiaoshuo.models import CATALOGUE

    best = recommended(gpus)
    ids = sorted(
        (m for m, card in CATALOGUE.items() if card.kind == "llm"), key=lambda m: CATALOGUE[m].size_gib
    )
    missing = missing_model(services)
    if missing and missing not in ids:
        ids.insert(0, missing)
    out = []
    for model in ids:
        size = t("set_dl_size", lang, gib=CATALOGUE[model].size_gib) if model in CATALOGUE else ""
        mark = t("set_dl_recommended_mark", lang) if model == best else ""
        out.append((f"{model}{size}{mark}", model))
    return out


def why(lang: str, gpus: tuple[dict[str, Any], ...] | None = None) -> str:
    """Why the recommended model suits this machine, in words (the facts ``auto_model`` decides on)."""
    from xiaoshuo.model_names import BIG_GPU_GIB, MID_GPU_GIB

    if gpus is None:
        from xiaoshuo.hardware import gpu_memory

        gpus = gpu_memory()
    best = max((g["total_gib"] for g in gpus), default=0.0)
    model = recommended(gpus)
    if not gpus:
        return t("set_dl_why_cpu", lang, model=model)
    key = (
        "set_dl_why_big"
        if best >= BIG_GPU_GIB
        else "set_dl_why_mid"
        if best >= MID_GPU_GIB
        else "set_dl_why_small"
    )
    return t(key, lang, model=model, gib=f"{best:g}", big=BIG_GPU_GIB, mid=MID_GPU_GIB)


def help_text(services: Any, lang: str, gpus: tuple[dict[str, Any], ...] | None = None) -> str:
    """The panel's explanation: what is missing (if anything), the recommendation and why, the sources."""
    missing = missing_model(services)
    lines = [t("set_dl_missing", lang, model=missing)] if missing else []
    lines += [why(lang, gpus), t("set_dl_help", lang)]
    return "\n\n".join(lines)


def command(model_id: str | None) -> str:
    """The equivalent command for the chosen model (empty without one)."""
    from xiaoshuo.models import pull_command

    model = (model_id or "").strip()
    return pull_command(model) if model else ""


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
