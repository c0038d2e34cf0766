"""The Gradio app: 创作 / 记忆 / 训练 / 设置 — a thin layer over the Python API.

Every handler calls :mod:`xiaoshuo.engine`, :mod:`xiaoshuo.memory`, :mod:`xiaoshuo.data` or
:mod:`xiaoshuo.training` through the ``Services`` object; errors become ``gr.Error`` (shown on the
page), never strings yielded as output.  Generation is an async generator over ``Engine.stream``:
Gradio's event loop is not the engine's, which is exactly what the engine is built for; the stop
button cancels the task and the engine aborts the request.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.book import build_book_tab
from xiaoshuo.webui.generation import MAX_CANDIDATES, generate_stream
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.services import Services, save_uploads

DEMO_BANNER = (
    "> **演示模式 Demo mode** — 这里用的是现场生成的随机小模型，写出来的文字是随机字符，没有意义；"
    "这个模式只用来熟悉界面。要真正写作：在「设置」页「下载模型」，或运行 `xiaoshuo model pull`，"
    "再去掉 `--demo` 启动。 (The model is a random tiny one built on the spot: its text is random. "
    "This mode exists to explore the interface.)"
)


def _error(exc: Exception) -> gr.Error:
    return gr.Error(str(exc) if isinstance(exc, XiaoshuoError) else f"{type(exc).__name__}: {exc}")


def build_app(services: Services, *, concurrency: int = 8) -> gr.Blocks:
    """The app; ``concurrency`` limits simultaneous generations (the rest wait in Gradio's queue)."""
    s = services.settings
    lang = s.webui.language
    g = s.generation
    with gr.Blocks(title=t("title", lang)) as demo:
        gr.Markdown(f"## {t('title', lang)}")
        if services.demo:
            gr.Markdown(DEMO_BANNER, elem_id="demo-banner")
        engine_status = gr.Markdown(elem_id="engine-status")
        with gr.Tabs():
            with gr.Tab(t("tab_create", lang), id="create"):  # the book (webui/book.py)
                book = build_book_tab(services, lang, concurrency)
            with gr.Tab(t("tab_scratch", lang), id="scratch"):  # the free request → story page
                create = _create_tab(services, lang, g, concurrency)
            with gr.Tab(t("tab_memory", lang), id="memory") as memory_tab:
                _memory_tab(services, lang, create["novel"], memory_tab)
            with gr.Tab(t("tab_train", lang), id="train"):
                _train_tab(services, lang, create["adapter"])
            with gr.Tab(t("tab_settings", lang), id="settings"):
                _settings_tab(services, lang, create["adapter"])

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


# --------------------------------------------------------------------------- 创作
def _create_tab(services: Services, lang: str, g: Any, concurrency: int) -> dict[str, Any]:
    novels = services.novels()
    with gr.Row():
        novel = gr.Dropdown(
            novels, value=novels[0], label=t("novel", lang), allow_custom_value=True, elem_id="novel", scale=2
        )
        adapter = gr.Dropdown(
            [t("none", lang), *services.adapters()],
            value=t("none", lang),
            label=t("adapter", lang),
            elem_id="adapter",
            scale=2,
        )
        memory_on = gr.Checkbox(True, label=t("memory_on", lang), elem_id="memory-on", scale=1)
    request = gr.Textbox(
        label=t("request", lang), placeholder=t("request_ph", lang), lines=2, elem_id="request"
    )
    with gr.Row():
        with gr.Column(scale=3):
            story = gr.Textbox(  # filled on page load (demo.load), never at build time
                "",
                label=t("story", lang),
                lines=14,
                max_lines=40,
                elem_id="story",
            )
        with gr.Column(scale=1):
            temperature = gr.Number(g.temperature, label=t("temperature", lang), elem_id="temperature")
            top_p = gr.Number(g.top_p, label=t("top_p", lang), elem_id="top-p")
            top_k = gr.Number(g.top_k, label=t("top_k", lang), precision=0, elem_id="top-k")
            max_tokens = gr.Number(
                min(g.max_tokens, 512), label=t("max_tokens", lang), precision=0, elem_id="max-tokens"
            )
            rep = gr.Number(g.repetition_penalty, label=t("rep", lang), elem_id="repetition-penalty")
            seed = gr.Number(-1, label=t("seed", lang), precision=0, elem_id="seed")
            n = gr.Slider(1, MAX_CANDIDATES, value=1, step=1, label=t("n", lang), elem_id="n")
    with gr.Row():
        generate = gr.Button(t("generate", lang), variant="primary", elem_id="generate")
        stop = gr.Button(t("stop", lang), variant="stop", elem_id="stop")
    outputs, uses = [], []
    with gr.Row():
        for i in range(MAX_CANDIDATES):
            with gr.Column():
                outputs.append(
                    gr.Textbox(
                        label=f"{t('candidate', lang)} {i + 1}",
                        lines=8,
                        interactive=False,
                        elem_id="output" if i == 0 else f"output-{i + 1}",
                        buttons=["copy"],
                    )
                )
                uses.append(gr.Button(f"{t('use', lang)} {i + 1}", elem_id=f"use-{i + 1}", size="sm"))
    notice = gr.Markdown(elem_id="generation-notice")
    with gr.Accordion(t("inspector", lang), open=False, elem_id="inspector-acc"):
        inspector = gr.JSON(elem_id="context-inspector")

    def sampling(temperature, top_p, top_k, max_tokens, rep, seed, n):
        from xiaoshuo.engine import SamplingSettings

        try:
            return SamplingSettings(
                temperature=float(temperature),
                top_p=float(top_p),
                top_k=int(top_k),
                max_tokens=int(max_tokens),
                repetition_penalty=float(rep),
                seed=None if seed is None or int(seed) < 0 else int(seed),
                n=int(n),
            )
        except (XiaoshuoError, TypeError, ValueError) as exc:
            raise _error(exc) from None

    async def run(
        novel, request, story, temperature, top_p, top_k, max_tokens, rep, seed, n, memory_on, adapter
    ):
        if not (request or "").strip():
            raise gr.Error(t("err_empty_request", lang))
        settings = sampling(temperature, top_p, top_k, max_tokens, rep, seed, n)
        warned = False
        try:
            async for update in generate_stream(
                services, novel, request, story or "", settings, memory_on, adapter
            ):
                if update.warnings and not warned:
                    warned = True
                    for warning in update.warnings:
                        gr.Warning(warning)
                notice = "\n\n".join(f"⚠ {w}" for w in update.warnings)
                # (gr.skip() for an unchanged inspector stalls the browser: Gradio 6.31)
                yield [*update.texts, update.report, notice]
        except (XiaoshuoError, OSError) as exc:
            raise _error(exc) from None

    gen_event = generate.click(
        run,
        [novel, request, story, temperature, top_p, top_k, max_tokens, rep, seed, n, memory_on, adapter],
        [*outputs, inspector, notice],
        api_name="generate",
        concurrency_limit=concurrency,  # generations at once (webui --concurrency); others queue
        concurrency_id="generate",
    )
    stop.click(None, cancels=[gen_event], api_visibility="private")

    for i, use in enumerate(uses):

        def append(novel, story, chosen):
            text = (story or "") + (chosen or "")
            try:
                services.stories.save(novel or "default", text)
            except (XiaoshuoError, OSError) as exc:
                raise _error(exc) from None
            return text

        use.click(append, [novel, story, outputs[i]], story, api_visibility="private")

    def autosave(nv, text):
        try:
            services.stories.save(nv or "default", text or "")
        except (XiaoshuoError, OSError) as exc:
            raise _error(exc) from None

    story.change(autosave, [novel, story], None, api_visibility="private", show_progress="hidden")

    def switch_novel(nv):
        default = services.stories.adapter(nv or "default")
        return services.stories.load(nv or "default"), default if default else gr.skip()

    def on_load(nv):
        """Every page load reads the story from disk (never the value the server started with)."""
        nv = nv or "default"
        default = services.stories.adapter(nv)
        choices = [t("none", lang), *services.adapters()]
        return (
            gr.update(choices=services.novels()),
            services.stories.load(nv),
            gr.update(choices=choices, value=default) if default else gr.update(choices=choices),
        )

    novel.change(switch_novel, novel, [story, adapter], api_visibility="private")
    adapter.change(
        lambda nv, a: services.stories.set_adapter(nv or "default", a),
        [novel, adapter],
        None,
        api_visibility="private",
        show_progress="hidden",
    )
    return {"novel": novel, "adapter": adapter, "story": story, "on_load": on_load}


# --------------------------------------------------------------------------- 记忆
def _memory_tab(services: Services, lang: str, novel: gr.Dropdown, tab: gr.Tab | None = None) -> None:
    from xiaoshuo.memory import KIND_LABELS, KINDS

    kinds = [(f"{KIND_LABELS[k]} {k}", k) for k in KINDS]
    with gr.Row():
        kind = gr.Radio(kinds, value="character", label=t("kind", lang), elem_id="memory-kind")
    table = gr.Dataframe(
        headers=["id", "kind", "name", "aliases", "text", "chapter", "importance", "pinned"],
        interactive=False,
        elem_id="memory-table",
        wrap=True,
    )
    with gr.Row():
        name = gr.Textbox(label=t("name", lang), elem_id="memory-name")
        aliases = gr.Textbox(label=t("aliases", lang), elem_id="memory-aliases")
        characters = gr.Textbox(label=t("characters", lang), elem_id="memory-characters")
    text = gr.Textbox(label=t("text", lang), lines=3, elem_id="memory-text")
    with gr.Row():
        traits = gr.Textbox(label=t("traits", lang), elem_id="memory-traits")
        relations = gr.Textbox(label=t("relations", lang), elem_id="memory-relations")
        state = gr.Textbox(label=t("state", lang), elem_id="memory-state")
        when = gr.Textbox(label=t("time_in_story", lang), elem_id="memory-time")
        why = gr.Textbox(label=t("why", lang), elem_id="memory-why")
    with gr.Row():
        chapter = gr.Number(None, label=t("chapter", lang), precision=0, elem_id="memory-chapter")
        importance = gr.Slider(
            1, 5, value=3, step=1, label=t("importance", lang), elem_id="memory-importance"
        )
        pinned = gr.Checkbox(False, label=t("pinned", lang), elem_id="memory-pinned")
        entry_id = gr.Textbox(label=t("entry_id", lang), elem_id="memory-id")
    with gr.Row():
        add = gr.Button(t("add", lang), variant="primary", elem_id="memory-add")
        edit = gr.Button(t("edit", lang), elem_id="memory-edit")
        delete = gr.Button(t("delete", lang), variant="stop", elem_id="memory-delete")
    message = gr.Markdown(elem_id="memory-message")
    with gr.Row():
        query = gr.Textbox(label=t("search", lang), elem_id="memory-query", scale=3)
        search_btn = gr.Button(t("search", lang), elem_id="memory-search", scale=1)
    results = gr.JSON(elem_id="memory-results")
    with gr.Row():
        upload = gr.File(label=t("import", lang), file_types=[".json"], elem_id="memory-import")
        export_btn = gr.Button(t("export", lang), elem_id="memory-export")
        export_file = gr.File(label=t("export", lang), interactive=False, elem_id="memory-export-file")
    with gr.Row():  # the CLI's maintenance (memory reindex, counts): usable while the page holds the store
        stats_btn = gr.Button(t("mem_stats", lang), elem_id="memory-stats")
        reindex_all = gr.Checkbox(False, label=t("mem_reindex_all", lang), elem_id="memory-reindex-all")
        reindex_btn = gr.Button(t("mem_reindex", lang), elem_id="memory-reindex")
    maintenance = gr.JSON(elem_id="memory-maintenance")

    def rows(novel, kind):
        try:
            entries = services.store().list(novel or "default", kind=kind)
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return [
            [e.id, e.kind, e.name, "、".join(e.aliases), e.text, e.chapter, e.importance, e.pinned]
            for e in entries
        ]

    def split(text):
        return [x.strip() for x in (text or "").replace("，", ",").replace("、", ",").split(",") if x.strip()]

    def relations_of(text):
        pairs = {}
        for item in (text or "").replace("；", ";").split(";"):
            who, sep, what = item.partition("=")
            if item.strip() and not sep:
                raise gr.Error(f"关系要写成 人物=关系，多个用分号分开 (relations: name=relation; …): {item}")
            if who.strip():
                pairs[who.strip()] = what.strip()
        return pairs

    def fields(
        kind,
        name,
        aliases,
        characters,
        text,
        chapter,
        importance,
        pinned,
        traits,
        relations,
        state,
        when,
        why,
    ):
        return {
            "kind": kind,
            "name": name or "",
            "aliases": split(aliases),
            "characters": split(characters),
            "text": text or "",
            "chapter": None if chapter in (None, "") else int(chapter),
            "importance": int(importance),
            "pinned": bool(pinned),
            "traits": split(traits),
            "relationships": relations_of(relations),
            "state": state or "",
            "time_in_story": when or "",
            "why": why or "",
        }

    def do_add(novel, kind, *values):
        from xiaoshuo.memory import make_entry

        try:
            entry = make_entry(novel=novel or "default", **fields(kind, *values))
            services.store().add(entry)
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return rows(novel, kind), f"✓ {entry.id}"

    def do_edit(novel, kind, entry, *values):
        changes = {
            k: v for k, v in fields(kind, *values).items() if v not in ("", [], {}, None) and k != "kind"
        }
        try:
            services.store().update((entry or "").strip(), novel or "default", **changes)
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return rows(novel, kind), f"✓ {entry}"

    def do_delete(novel, kind, entry):
        try:
            store = services.store()
            store.get((entry or "").strip(), novel or "default")
            store.delete(entry.strip(), novel or "default")
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return rows(novel, kind), f"✓ {entry}"

    def do_search(novel, query):
        from xiaoshuo.memory import search

        try:
            return [h.as_dict() for h in search(services.store(), novel or "default", query or "")]
        except XiaoshuoError as exc:
            raise _error(exc) from None

    def do_import(novel, kind, file):
        if file is None:
            return rows(novel, kind), ""
        try:
            data = json.loads(Path(file).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise gr.Error(f"导入文件不是合法的 JSON (not valid JSON): {exc}") from None
        try:
            ids = services.store().import_novel(data, novel=novel or "default")
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return rows(novel, kind), f"✓ {len(ids)}"

    def do_export(novel):
        data = services.store().export_novel(novel or "default")
        path = Path(tempfile.mkdtemp(prefix="xiaoshuo-export-")) / "memory.json"
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")
        return str(path)

    form = [name, aliases, characters, text, chapter, importance, pinned, traits, relations, state, when, why]
    add.click(do_add, [novel, kind, *form], [table, message], api_visibility="private")
    edit.click(do_edit, [novel, kind, entry_id, *form], [table, message], api_visibility="private")
    delete.click(do_delete, [novel, kind, entry_id], [table, message], api_visibility="private")
    search_btn.click(do_search, [novel, query], results, api_visibility="private")
    upload.upload(do_import, [novel, kind, upload], [table, message], api_visibility="private")
    export_btn.click(do_export, novel, export_file, api_visibility="private")

    def do_stats(novel):
        try:
            return services.memory_stats(novel or "default")
        except XiaoshuoError as exc:
            raise _error(exc) from None

    def do_reindex(novel, everything, kind):
        try:
            done = services.store().reindex(None if everything else (novel or "default"))
        except XiaoshuoError as exc:
            raise _error(exc) from None
        model = services.settings.memory.embedding_model
        return {"reindexed": done, "embedding_model": model}, rows(novel, kind)

    stats_btn.click(do_stats, novel, maintenance, api_visibility="private")
    reindex_btn.click(
        do_reindex, [novel, reindex_all, kind], [maintenance, table], api_visibility="private"
    )
    kind.change(rows, [novel, kind], table, api_visibility="private")
    if tab is not None:  # entries approved on the 创作 page show when the tab opens
        tab.select(rows, [novel, kind], table, api_visibility="private")
    novel.change(rows, [novel, kind], table, api_visibility="private")


# --------------------------------------------------------------------------- 训练
def _train_tab(services: Services, lang: str, adapter: gr.Dropdown) -> None:
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


# --------------------------------------------------------------------------- 设置
def _settings_tab(services: Services, lang: str, adapter: gr.Dropdown) -> None:
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
