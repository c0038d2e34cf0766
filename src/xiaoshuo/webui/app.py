"""The Gradio app: assembles the pages 创作 (book) / 随手写 (``pages/scratch``) / 记忆 (``pages/memory``) /
总览 (``pages/overview``) / 训练 (``pages/train``) / 设置 (``pages/settings``), the model status line,
and the page-load wiring between them.

Each page lives in its own folder (``layout.py``: components and wiring; ``handlers.py``: plain
functions); its handlers call :mod:`xiaoshuo.writing`, :mod:`xiaoshuo.memory`,
:mod:`xiaoshuo.data` or :mod:`xiaoshuo.training` through the ``Services`` object; errors become ``gr.Error``
(``webui.errors``), never strings yielded as output.  This module holds no handler logic of its own.
"""

from __future__ import annotations

import gradio as gr

from xiaoshuo.webui.files import GRADIO_DELETE_CACHE
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.book.layout import build_book_tab
from xiaoshuo.webui.pages.memory.layout import build_memory_tab
from xiaoshuo.webui.pages.overview.layout import build_overview_tab
from xiaoshuo.webui.pages.scratch.layout import build_scratch_tab
from xiaoshuo.webui.pages.settings.layout import build_settings_tab
from xiaoshuo.webui.pages.train.layout import build_train_tab
from xiaoshuo.webui.services import Services


def gradio_i18n() -> gr.I18n:
    """What Gradio's own Chinese dictionaries lack (``locale.common.GRADIO_ZH_*``), for ``launch(i18n=…)``."""
    from xiaoshuo.webui.locale.common import GRADIO_ZH_CN, GRADIO_ZH_TW

    return gr.I18n(**{"zh-CN": GRADIO_ZH_CN, "zh-TW": GRADIO_ZH_TW})


def build_app(services: Services, *, concurrency: int = 8) -> gr.Blocks:
    """The app; ``concurrency`` limits simultaneous generations (the rest wait in Gradio's queue)."""
    s = services.settings
    lang = s.webui.language
    g = s.generation
    # Gradio's copies of downloads and uploads go after a day (webui.files), not never.
    with gr.Blocks(title=t("title", lang), delete_cache=GRADIO_DELETE_CACHE) as demo:
        gr.Markdown(f"## {t('title', lang)}")
        if services.demo:
            from xiaoshuo.gemma import is_gemma

            banner = "demo_banner_gemma" if is_gemma(s.model.base_model) else "demo_banner"
            gr.Markdown(t(banner, lang), elem_id="demo-banner")
        engine_status = gr.Markdown(elem_id="engine-status")
        with gr.Tabs():
            with gr.Tab(t("tab_create", lang), id="create"):  # the book (webui/pages/book/)
                book = build_book_tab(services, lang, concurrency)
            with gr.Tab(t("tab_scratch", lang), id="scratch"):  # the free request → story page
                create = build_scratch_tab(services, lang, g, concurrency)
            with gr.Tab(t("tab_memory", lang), id="memory") as memory_tab:
                build_memory_tab(services, lang, create["novel"], memory_tab)
            with gr.Tab(t("tab_overview", lang), id="overview") as overview_tab:  # the book at a glance
                build_overview_tab(services, lang, book["novel"], overview_tab)
            with gr.Tab(t("tab_train", lang), id="train"):
                train = build_train_tab(services, lang, create["adapter"])
            with gr.Tab(t("tab_settings", lang), id="settings"):
                settings_page = build_settings_tab(services, lang, create["adapter"])

        def status():
            state, message = services.engine.status()
            icon = {"ready": "●", "loading": "…", "error": "✗"}[state]  # CJK fonts lack emoji
            # Once ready, the adapter choices can come from the engine (served names on openai).
            adapters = (
                gr.update(choices=[t("none", lang), *services.adapters()]) if state == "ready" else gr.skip()
            )
            # Poll only while loading: a ticking timer stalls streamed updates in the browser.
            text = f"**{t('engine_status', lang)}**: {icon} {message}"
            return text, gr.Timer(active=state == "loading"), adapters

        timer = gr.Timer(1.0)
        status_outputs = [engine_status, timer, create["adapter"]]
        timer.tick(status, outputs=status_outputs, api_visibility="private", show_progress="hidden")
        demo.load(status, outputs=status_outputs, api_visibility="private")
        demo.load(book["on_load"], book["load_inputs"], book["load_outputs"], api_visibility="private")
        # the 训练 form follows the model loaded now (设置 may have switched it since the app was built)
        demo.load(train["on_load"], train["load_inputs"], train["load_outputs"], api_visibility="private")
        demo.load(
            settings_page["on_load"],
            settings_page["load_inputs"],
            settings_page["load_outputs"],
            api_visibility="private",
        )
        # 随手写 and 记忆 follow the book's novel (a novel's slug is its memory key)
        book["novel"].change(
            lambda slug: slug or gr.skip(), book["novel"], create["novel"], api_visibility="private"
        )
        demo.load(
            create["on_load"],
            create["novel"],
            [create["novel"], create["story"], create["adapter"]],
            api_visibility="private",
        )
    return demo
