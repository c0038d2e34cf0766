"""训练: upload novels, prepare data, start/stop/resume a LoRA training run, watch the loss.

Training runs in a subprocess (``Services.jobs``), never inside a UI callback.  Not responsible for
serving adapters (the engine) or listing them (设置).
"""

from __future__ import annotations

import json

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.errors import as_gradio_error as _error
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.services import Services, save_uploads


def build_train_tab(services: Services, lang: str, adapter: gr.Dropdown) -> None:
    s = services.settings
    tr = s.training
    files = gr.File(label=t("upload", lang), file_count="multiple", elem_id="train-upload")
    upload_msg = gr.Markdown(elem_id="train-upload-message")
    prepare_btn = gr.Button(t("prepare", lang), elem_id="train-prepare")
    prepare_out = gr.JSON(elem_id="train-prepare-summary")
    with gr.Row():
        base_model = gr.Textbox(s.model.base_model, label="base model", elem_id="train-base-model")
        run_name = gr.Textbox("webui-run", label="run", elem_id="train-run")
    with gr.Row():
        epochs = gr.Number(tr.num_train_epochs, label="epochs", elem_id="train-epochs")
        batch = gr.Number(
            tr.per_device_train_batch_size, label="batch size", precision=0, elem_id="train-batch"
        )
        accum = gr.Number(
            tr.gradient_accumulation_steps, label="grad accum", precision=0, elem_id="train-accum"
        )
        lr = gr.Number(tr.learning_rate, label="lr", elem_id="train-lr")
        lora_r = gr.Number(s.model.lora_r, label="LoRA r", precision=0, elem_id="train-lora-r")
        seq = gr.Number(tr.max_seq_length, label="max seq length", precision=0, elem_id="train-seq")
        max_steps = gr.Number(0, label="max steps (0 = epochs)", precision=0, elem_id="train-max-steps")
        qlora = gr.Checkbox(s.model.load_in_4bit, label="QLoRA 4-bit", elem_id="train-qlora")
    command = gr.Textbox(label=t("preview_cmd", lang), interactive=False, elem_id="train-command")
    with gr.Row():
        start = gr.Button(t("train_start", lang), variant="primary", elem_id="train-start")
        stop = gr.Button(t("train_stop", lang), variant="stop", elem_id="train-stop")
        resume_from = gr.Dropdown(
            services.jobs.resumable(), label=t("train_resume", lang), elem_id="train-resume-from"
        )
        resume = gr.Button(t("train_resume", lang), elem_id="train-resume")
    progress = gr.Markdown(elem_id="train-progress")
    curve = gr.LinePlot(x="step", y="loss", title=t("loss", lang), elem_id="train-loss")

    form_inputs = [base_model, run_name, epochs, batch, accum, lr, lora_r, seq, max_steps, qlora]

    def form(base_model, run, epochs, batch, accum, lr, lora_r, seq, max_steps, qlora):
        values = {
            "base_model": base_model,
            "run": (run or "webui-run").strip(),
            "epochs": epochs,
            "batch_size": batch,
            "grad_accum": accum,
            "lr": lr,
            "lora_r": lora_r,
            "max_seq_length": seq,
            "max_steps": max_steps or None,
            "qlora": qlora,
        }
        if any(v is None for k, v in values.items() if k != "max_steps") or float(lr or 0) <= 0:
            raise gr.Error("训练参数不完整或无效 (incomplete or invalid training settings)")
        return values

    def preview(*args):
        return " ".join(services.jobs.command(form(*args)))

    def do_upload(paths):
        return "\n\n".join(save_uploads(paths or [], s.paths.raw_dir))

    def do_prepare(progress=gr.Progress()):  # noqa: B008 - Gradio's injection idiom
        from xiaoshuo.data import PrepareError, prepare

        def report(name: str, done: int, total: int) -> None:
            progress(done / total if total else 0.0, desc=name or "done")

        try:
            manifest = prepare(s, progress=report)
        except PrepareError as exc:
            raise _error(exc) from None
        preview_lines = []
        for entry in manifest.get("outputs", {}).get("train", {}).values():
            with (s.paths.data_dir / entry["path"]).open(encoding="utf-8") as fh:
                first = fh.readline()
            if first:
                preview_lines.append(json.loads(first))
        return {
            "totals": manifest["totals"],
            "sources": [
                {k: src[k] for k in ("path", "status", "encoding", "chapters", "samples", "error")}
                for src in manifest["sources"]
            ],
            "preview": preview_lines,
        }

    def do_start(*args):
        try:
            return services.jobs.start(form(*args)), gr.Timer(active=True), {"events": -1}
        except XiaoshuoError as exc:
            raise _error(exc) from None

    def do_resume(path, *args):
        if not path:
            raise gr.Error("请选择要继续的训练 (choose a run to resume)")
        try:
            return services.jobs.start(form(*args), resume=path), gr.Timer(active=True), {"events": -1}
        except XiaoshuoError as exc:
            raise _error(exc) from None

    seen = gr.State({"events": -1})  # per browser session: what this page has already drawn

    def poll(seen):
        import pandas as pd

        seen = dict(seen or {"events": -1})
        events = services.jobs.events()
        running = services.jobs.running()
        if len(events) == seen["events"]:  # nothing new: leave the page alone
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=running), seen
        seen["events"] = len(events)
        logs = [e for e in events if e["event"] == "log"]
        df = pd.DataFrame({"step": [e["step"] for e in logs], "loss": [e["loss"] for e in logs]})
        last = events[-1] if events else None
        if last is None:
            text = ""
        elif last["event"] == "log":
            eta = f", ETA {last['eta_s']:.0f} s" if last.get("eta_s") else ""
            text = (
                f"step {last['step']}/{last['max_steps']} · loss {last['loss']:.4f} · "
                f"{last['tokens_per_s']:.0f} tok/s{eta}"
            )
        else:
            text = f"{last['event']}: " + ", ".join(
                f"{k}={v}"
                for k, v in last.items()
                if k in ("step", "global_step", "eval_loss", "final_model", "checkpoint", "message")
            )
        choices = [t("none", lang), *services.adapters()]
        resumable = gr.update(choices=services.jobs.resumable())
        # The timer runs only while a job does (a ticking timer stalls streaming on the 创作 tab).
        return df, text, gr.update(choices=choices), resumable, gr.Timer(active=running), seen

    for comp in form_inputs:
        comp.change(preview, form_inputs, command, api_visibility="private", show_progress="hidden")
    timer = gr.Timer(1.0, active=False)  # ticks only while a training job runs
    files.upload(do_upload, files, upload_msg, api_visibility="private")
    prepare_btn.click(do_prepare, None, prepare_out, api_visibility="private")
    start.click(do_start, form_inputs, [command, timer, seen], api_visibility="private")
    resume.click(
        do_resume, [resume_from, *form_inputs], [command, timer, seen], api_visibility="private"
    )
    stop.click(services.jobs.stop, None, None, api_visibility="private")
    timer.tick(
        poll,
        seen,
        [curve, progress, adapter, resume_from, timer, seen],
        api_visibility="private",
        show_progress="hidden",
    )
