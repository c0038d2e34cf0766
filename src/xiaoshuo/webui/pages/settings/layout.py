"""设置 (settings)'s layout: status, system checks, trained adapters, the model switch, the model
download panel and the effective configuration — components and wiring only; every event calls a
function of ``handlers.py`` (through ``webui.errors.guard``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from xiaoshuo.webui.errors import guard
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.downloads.layout import download_panel
from xiaoshuo.webui.pages.settings import handlers as h
from xiaoshuo.webui.services import Services


def _table(keys: tuple[str, ...], lang: str, elem_id: str, value: Any = None) -> gr.Dataframe:
    return gr.Dataframe(value, headers=h.headers(keys, lang), interactive=False, wrap=True, elem_id=elem_id)


def _adapters_section(lang: str) -> dict[str, Any]:
    """适配器: the table, 还没有, the pick list, use / merge / delete and the confirm row."""

    def L(key: str) -> str:
        return t(key, lang)

    gr.Markdown(f"### {L('set_adapters')}")
    adapters = _table(h.ADAPTER_HEADERS, lang, "settings-adapters")
    no_adapters = gr.Markdown(L("set_no_adapters"), visible=False, elem_id="settings-no-adapters")
    with gr.Row():
        pick = gr.Dropdown([], label=L("set_adapter_pick"), elem_id="settings-adapter-pick")
        use = gr.Button(L("set_adapter_use"), elem_id="settings-adapter-use")
        merge = gr.Button(L("set_adapter_merge"), elem_id="settings-adapter-merge")
        delete = gr.Button(L("set_adapter_delete"), variant="stop", elem_id="settings-adapter-delete")
    with gr.Row(visible=False) as confirm_row:
        question = gr.Markdown(elem_id="settings-adapter-question")
        confirm = gr.Button(L("set_adapter_confirm"), variant="stop", elem_id="settings-adapter-confirm")
        cancel = gr.Button(L("set_adapter_cancel"), elem_id="settings-adapter-cancel")
    return {
        "table": adapters,
        "none": no_adapters,
        "pick": pick,
        "use": use,
        "merge": merge,
        "delete": delete,
        "confirm_row": confirm_row,
        "question": question,
        "confirm": confirm,
        "cancel": cancel,
    }


def build_settings_tab(services: Services, lang: str, adapter: Any) -> dict[str, Any]:
    """Lay the page out and wire the handlers; returns the page-load event for ``app.py``:
    ``demo.load(page["on_load"], page["load_inputs"], page["load_outputs"])``."""

    def L(key: str) -> str:
        return t(key, lang)

    gr.Markdown(f"### {L('set_status')}")
    status = _table(h.STATUS_HEADERS, lang, "settings-status")
    refresh = gr.Button(L("set_refresh"), elem_id="settings-refresh")
    with gr.Accordion(L("set_checks"), open=True):
        doctor = _table(h.DOCTOR_HEADERS, lang, "settings-doctor")
    a = _adapters_section(lang)
    message = gr.Markdown(elem_id="settings-message")
    gr.Markdown(f"### {L('set_reload_title')}")
    with gr.Row():
        model = gr.Textbox(services.engine.model, label=L("set_model"), elem_id="settings-model")
        backend = gr.Dropdown(
            ["auto", "vllm", "llamacpp", "transformers", "openai"],
            value=services.engine.backend or "auto",
            label=L("set_backend_pick"),
            elem_id="settings-backend",
        )
        reload = gr.Button(L("set_reload"), elem_id="settings-reload")
    download_panel(services, lang)
    with gr.Accordion(L("set_config"), open=False):
        _table(h.CONFIG_HEADERS, lang, "settings-config", h.config_rows(services, lang))

    def on(handler):  # a handler of the page, bound to this app's services and language
        return guard(partial(handler, services, lang))

    def picked_row(rows, evt: gr.SelectData):  # (a partial would hide gr.SelectData from Gradio)
        return h.picked_row(evt.row_value)

    private = {"api_visibility": "private"}
    load = on(h.page_load)
    load_outputs = [status, doctor, a["table"], a["none"], a["pick"]]
    refresh.click(load, None, load_outputs, **private)
    a["table"].select(picked_row, a["table"], a["pick"], **private)
    a["use"].click(on(h.use_clicked), a["pick"], [message, status], **private)
    a["merge"].click(guard(partial(h.merge_adapter, services, lang=lang)), a["pick"], message, **private)
    a["delete"].click(on(h.ask_delete), a["pick"], [a["confirm_row"], a["question"]], **private)
    a["cancel"].click(lambda: gr.update(visible=False), None, a["confirm_row"], **private)
    a["confirm"].click(
        on(h.delete_confirmed),
        a["pick"],
        [a["confirm_row"], message, a["table"], a["none"], a["pick"], adapter],
        **private,
    )
    reload.click(on(h.reload_clicked), [model, backend], [message, status, adapter], **private)
    return {"on_load": load, "load_inputs": None, "load_outputs": load_outputs}
