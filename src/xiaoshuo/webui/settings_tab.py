"""设置: status (doctor), configuration, model download, adapters, engine reload.

Not responsible for the model download itself (``downloads.py`` runs ``xiaoshuo model pull``).
"""

from __future__ import annotations

import gradio as gr

from xiaoshuo.webui.locale import t
from xiaoshuo.webui.services import Services


def build_settings_tab(services: Services, lang: str, adapter: gr.Dropdown) -> None:
    s = services.settings
    doctor = gr.JSON(label=t("doctor", lang), elem_id="settings-doctor")
    refresh = gr.Button(t("doctor", lang), elem_id="settings-refresh")
    with gr.Accordion(t("config", lang), open=False):
        gr.JSON(
            {
                key: {"value": str(value), "source": source}
                for key, value, source, _ in s.items()
                if key != "engine.openai_api_key"
            },
            elem_id="settings-config",
        )
    from xiaoshuo.webui.downloads import download_panel

    download_panel(services, lang)
    adapters = gr.JSON(label=t("adapters", lang), elem_id="settings-adapters")
    with gr.Row():
        model = gr.Textbox(services.engine.model, label="model", elem_id="settings-model")
        backend = gr.Dropdown(
            ["auto", "vllm", "transformers", "openai"],
            value=services.engine.backend or "auto",
            label="backend",
            elem_id="settings-backend",
        )
        reload = gr.Button(t("reload", lang), elem_id="settings-reload")

    def status():
        from xiaoshuo.doctor import diagnose
        from xiaoshuo.training import list_adapters

        report = diagnose(s).to_dict()
        return report, [a.row() for a in list_adapters(s.paths.checkpoints_dir)]

    def do_reload(model, backend):
        services.engine.restart(model=model or None, backend=backend, lora=services.engine.lora)
        return gr.update(choices=[t("none", lang), *services.adapters()])

    refresh.click(status, None, [doctor, adapters], api_visibility="private")
    reload.click(do_reload, [model, backend], adapter, api_visibility="private")
