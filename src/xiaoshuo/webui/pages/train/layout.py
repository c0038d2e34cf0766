"""训练 (train)'s layout: what training gives a writer, data upload and preparation, the training form
(the rarely changed settings under 高级), how much text is needed and how long it takes, the equivalent
command (folded), start / stop / resume, progress, the loss curve, the trained adapters and what to do
with them — components and wiring only;
every event calls a function of ``handlers.py`` (through ``webui.errors.guard``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from xiaoshuo.webui.errors import guard
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.train import handlers as h
from xiaoshuo.webui.services import Services


def _data_section(lang: str, init: dict[str, Any]) -> dict[str, Any]:
    """上传 and 准备数据 (the summary, the per-file table with its headers before any data)."""
    gr.Markdown(t("train_data_title", lang))
    files = gr.File(label=t("upload", lang), file_count="multiple", elem_id="train-upload")
    upload_msg = gr.Markdown(elem_id="train-upload-message")
    prepare = gr.Button(t("prepare", lang), elem_id="train-prepare")
    summary = gr.Markdown(init["summary"], elem_id="train-prepare-summary")
    table = gr.Dataframe(
        init["table"],
        label=t("train_prepare_table", lang),
        interactive=False,
        wrap=True,
        elem_id="train-prepare-table",
    )
    return {"files": files, "upload_msg": upload_msg, "prepare": prepare, "summary": summary, "table": table}


def _form(lang: str, v: dict[str, Any], init: dict[str, Any]) -> list:
    """The training form, in ``handlers.FIELDS`` order: what a writer decides in sight (model, name,
    epochs, steps), the rest under 高级 (closed), each with one line on what it does."""
    gr.Markdown(t("train_form_title", lang))
    with gr.Row():
        base_model = gr.Textbox(
            v["base_model"],
            label=t("train_base_model", lang),
            info=t("train_base_model_info", lang),
            elem_id="train-base-model",
            scale=3,
        )
        run_name = gr.Textbox(
            v["run"], label=t("train_run", lang), info=t("train_run_info", lang), elem_id="train-run"
        )
    with gr.Row():
        epochs = gr.Number(
            v["epochs"],
            label=t("train_epochs", lang),
            info=t("train_epochs_info", lang),
            elem_id="train-epochs",
        )
        max_steps = gr.Number(
            0,
            label=t("train_max_steps", lang),
            info=t("train_max_steps_info", lang),
            precision=0,
            elem_id="train-max-steps",
        )
    with gr.Accordion(t("train_advanced", lang), open=False, elem_id="train-advanced"):
        tokenizer = gr.Textbox(
            v["tokenizer"],
            label=t("train_tokenizer", lang),
            info=t("train_tokenizer_info", lang),
            elem_id="train-tokenizer",
        )
        with gr.Row():
            batch = gr.Number(
                v["batch_size"],
                label=t("train_batch", lang),
                info=t("train_batch_info", lang),
                precision=0,
                elem_id="train-batch",
            )
            accum = gr.Number(
                v["grad_accum"],
                label=t("train_accum", lang),
                info=t("train_accum_info", lang),
                precision=0,
                elem_id="train-accum",
            )
            lr = gr.Number(
                v["lr"], label=t("train_lr", lang), info=t("train_lr_info", lang), elem_id="train-lr"
            )
        with gr.Row():
            lora_r = gr.Number(
                v["lora_r"],
                label=t("train_lora_r", lang),
                info=t("train_lora_r_info", lang),
                precision=0,
                elem_id="train-lora-r",
            )
            seq = gr.Number(
                v["max_seq_length"],
                label=t("train_seq", lang),
                info=t("train_seq_info", lang),
                precision=0,
                elem_id="train-seq",
            )
            qlora = gr.Checkbox(
                v["qlora"], label=t("train_qlora", lang), info=init["qlora_info"], elem_id="train-qlora"
            )
    return [base_model, tokenizer, run_name, epochs, batch, accum, lr, lora_r, seq, max_steps, qlora]


def build_train_tab(services: Services, lang: str, adapter: gr.Dropdown) -> dict[str, Any]:
    """Lay out 训练 and wire its handlers; returns ``on_load`` / ``load_inputs`` / ``load_outputs``
    for ``demo.load`` (the form is filled from the loaded model when the page opens)."""
    init = h.on_load(services, lang)  # the page's first paint; ``load`` refreshes it per visit
    gr.Markdown(t("train_intro", lang), elem_id="train-intro")
    data = _data_section(lang, init)
    form = _form(lang, init["values"], init)
    estimate = gr.Markdown(init["estimate"], elem_id="train-estimate")
    with gr.Accordion(t("preview_cmd", lang), open=False, elem_id="train-command-box"):
        command = gr.Textbox(
            init["command"],
            label=t("preview_cmd", lang),  # hidden, but Gradio would write "Textbox" in its place
            show_label=False,
            interactive=False,
            lines=2,
            buttons=["copy"],
            elem_id="train-command",
        )
    gr.Markdown(t("train_run_title", lang))
    with gr.Row():
        start = gr.Button(t("train_start", lang), variant="primary", elem_id="train-start")
        stop = gr.Button(t("train_stop", lang), variant="stop", elem_id="train-stop")
        resume_from = gr.Dropdown(
            init["resume"], value=None, label=t("train_resume_choice", lang), elem_id="train-resume-from"
        )
        resume = gr.Button(t("train_resume", lang), elem_id="train-resume")
    progress = gr.Markdown(elem_id="train-progress")
    step_axis, loss_axis = h.loss_axes(lang)
    curve = gr.LinePlot(
        h.loss_frame([], lang), x=step_axis, y=loss_axis, title=t("loss", lang), elem_id="train-loss"
    )
    adapters = gr.Dataframe(
        init["adapters"], label=t("train_adapters", lang), interactive=False, elem_id="train-adapters"
    )
    gr.Markdown(t("train_after", lang), elem_id="train-after")
    gr.Markdown(t("train_style_title", lang))
    gr.Markdown(t("train_style_help", lang, samples=h.STYLE_SAMPLES))
    with gr.Row():
        style_adapter = gr.Dropdown(
            init["style_choices"],
            value=init["style_choices"][-1] if init["style_choices"] else None,
            label=t("train_style_adapter", lang),
            elem_id="train-style-adapter",
        )
        style_start = gr.Button(t("train_style_start", lang), elem_id="train-style-start", scale=0)
    style_summary = gr.Markdown(elem_id="train-style-summary")
    style_chart = gr.Plot(show_label=False, elem_id="train-style-chart")
    style_table = gr.Dataframe(
        headers=h.style_columns(lang), interactive=False, show_label=False, elem_id="train-style-table"
    )
    with gr.Accordion(t("train_eval_title", lang), open=False, elem_id="train-eval-box"):
        eval_command = gr.Textbox(
            init["eval_command"],
            label=t("train_eval_command", lang),
            interactive=False,
            buttons=["copy"],
            elem_id="train-eval-command",
        )
    seen = gr.State({"events": -1})  # per browser session: what this page has already drawn
    timer = gr.Timer(1.0, active=False)  # ticks only while a training job runs

    def on(handler):  # a handler of the page, bound to this app's services and language
        return guard(partial(handler, services, lang))

    private = {"api_visibility": "private"}
    quiet = {**private, "show_progress": "hidden"}
    tokenizer = form[h.FIELDS.index("tokenizer")]
    for comp in form:
        comp.change(partial(h.command_preview, services, lang), form, command, **quiet)
        comp.change(on(h.estimate_text), form, estimate, **quiet)
    data["files"].upload(
        on(h.upload_clicked), [data["files"], *form], [data["upload_msg"], estimate], **private
    )
    data["prepare"].click(
        on(h.prepare_clicked), [tokenizer, *form], [data["summary"], data["table"], estimate], **private
    )
    start.click(on(h.start_clicked), form, [command, timer, seen], **private)
    resume.click(on(h.resume_clicked), [resume_from, *form], [command, timer, seen], **private)
    stop.click(services.jobs.stop, None, None, **private)
    timer.tick(
        on(h.poll),
        seen,
        [curve, progress, adapter, resume_from, adapters, eval_command, style_adapter, timer, seen],
        **quiet,
    )
    style_start.click(
        on(h.style_eval_clicked), style_adapter, [style_summary, style_table, style_chart], **private
    )
    return {
        "on_load": guard(partial(h.page_load, services, lang)),
        "load_inputs": None,
        "load_outputs": [
            *form,
            command,
            resume_from,
            adapters,
            data["summary"],
            data["table"],
            estimate,
            eval_command,
            style_adapter,
        ],
    }
