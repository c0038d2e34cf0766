"""The 训练 page's handlers without a browser: ``webui.pages.train.handlers`` over ``Services``.

The engine "runs" the tiny model (a holder that reports it, as ``EngineHolder`` does while loading)
while the config still names a 7B hub id: the form must follow the engine.  ``prepare`` is the real
pipeline with the tiny model's real tokenizer, offline, with every outside connection refused.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import gradio as gr
import pytest

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.testing import TINY_CORPUS
from xiaoshuo.webui.pages.train import handlers as h
from xiaoshuo.webui.pages.train.layout import build_train_tab
from xiaoshuo.webui.services import save_uploads

from .conftest import Holder

CONFIG_MODEL = "Qwen/Qwen2.5-7B-Instruct"


@pytest.fixture
def services(make_services, tiny_model: Path):
    """The engine has started loading the tiny model; the config names a 7B hub id."""
    overrides = {"model.base_model": CONFIG_MODEL, "model.load_in_4bit": True, "data.chunk_size": 128}
    return make_services(Holder(state="loading", model=str(tiny_model), backend="vllm"), overrides)


def _args(values: dict) -> list:
    return [values[k] for k in h.FIELDS]


# ----------------------------------------------------------------------------- the form
def test_form_is_prefilled_from_the_loaded_model_with_the_command(services, tiny_model: Path) -> None:
    page = h.on_load(services, "zh", cuda=False)
    values = page["values"]
    assert values["base_model"] == str(tiny_model) != CONFIG_MODEL
    assert values["tokenizer"] == str(tiny_model)  # a folder: no hub involved
    tr = services.settings.training
    assert (values["epochs"], values["lr"]) == (tr.num_train_epochs, tr.learning_rate)
    command = page["command"]  # filled on open, not only after a field changes
    assert f"model.base_model={tiny_model}" in command and CONFIG_MODEL not in command
    assert f"--run {values['run']}" in command and "--no-qlora" in command
    assert command == h.command_preview(services, "zh", *_args(values))


def test_remote_engine_falls_back_to_the_config(services) -> None:
    services.engine.backend = "openai"  # a served name is not a model training can load
    assert h.loaded_model(services) == CONFIG_MODEL
    assert h.tokenizer_for(services, CONFIG_MODEL) == CONFIG_MODEL
    pulled = services.settings.paths.models_dir / CONFIG_MODEL  # `xiaoshuo model pull` puts it here
    pulled.mkdir(parents=True)
    (pulled / "config.json").write_text("{}", "utf-8")
    assert h.tokenizer_for(services, CONFIG_MODEL) == str(pulled)


def test_qlora_is_off_without_cuda_and_says_why(services, monkeypatch) -> None:
    assert services.settings.model.load_in_4bit  # the config asks for it …
    checked, why = h.qlora_default(services, "zh", cuda=False)
    assert checked is False and "没有检测到显卡" in why and "默认关闭" in why  # … but there is no GPU
    assert h.on_load(services, "zh", cuda=False)["values"]["qlora"] is False
    assert h.qlora_default(services, "zh", cuda=True)[0] is True
    assert "CUDA" in h.qlora_default(services, "en", cuda=False)[1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert h.cuda_visible() is False  # hidden GPUs count as none


def test_incomplete_form_is_refused_in_words(services) -> None:
    values = h.form_defaults(services, "zh", cuda=False)
    values["lr"] = 0
    with pytest.raises(XiaoshuoError, match="训练参数不完整") as info:
        h.form_values("zh", *_args(values))
    assert "lr=0" in (info.value.received or "")
    values["lr"], values["run"] = 1e-4, "  "
    preview = h.command_preview(services, "zh", *_args(values))
    assert preview.startswith("（参数不完整") and "run" in preview
    with pytest.raises(XiaoshuoError, match="选择要继续"):
        h.start_training(services, "zh", *_args(h.form_defaults(services, cuda=False)), resume="")


def test_the_page_builds_and_its_load_fills_every_output(services, tiny_model: Path) -> None:
    with gr.Blocks():
        page = build_train_tab(services, "zh", gr.Dropdown())
    values = page["on_load"]()
    assert len(values) == len(page["load_outputs"])
    assert values[0] == str(tiny_model) and values[1] == str(tiny_model)
    command = values[len(h.FIELDS)]
    assert isinstance(command, str) and "train" in command and str(tiny_model) in command
    qlora = values[len(h.FIELDS) - 1]
    assert qlora["value"] is (h.cuda_visible() and services.settings.model.load_in_4bit)


# ----------------------------------------------------------------------------- prepare
@pytest.fixture
def no_network(monkeypatch):
    """Every outside connection fails at once (and is counted): offline must not mean waiting."""
    attempts = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            attempts.append(address)
            raise OSError(f"network disabled in this test: {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return attempts


def test_prepare_uses_the_loaded_models_tokenizer_offline(services, tiny_model: Path, no_network) -> None:
    raw = services.settings.paths.raw_dir
    raw.mkdir(parents=True)
    (raw / "novel.txt").write_text(TINY_CORPUS * 3, "utf-8")
    (raw / "picture.txt").write_bytes(bytes(range(256)) * 50)
    assert services.settings.data.tokenizer in ("", None)  # the config alone would mean the 7B hub id
    tokenizer = h.on_load(services, "zh", cuda=False)["values"]["tokenizer"]
    seen = []
    started = time.perf_counter()
    summary, table = h.prepare_data(services, "zh", tokenizer, progress=lambda f, d: seen.append((f, d)))
    seconds = time.perf_counter() - started
    assert seconds < 30, f"prepare took {seconds:.1f} s"
    assert no_network == []
    manifest = json.loads((services.settings.paths.data_dir / "prepared" / "manifest.json").read_text())
    assert manifest["tokenizer"] == str(tiny_model)
    assert summary.startswith("**数据已准备好**") and "1/2 个文件可用" in summary and "{" not in summary
    assert list(table.columns) == ["文件", "状态", "字数", "编码", "章节", "样本", "错误"]
    rows = {row["文件"]: row for row in table.to_dict("records")}
    assert rows["novel.txt"]["状态"] == "✓ 可用" and rows["novel.txt"]["章节"] == 9
    assert rows["novel.txt"]["样本"] == manifest["totals"]["samples"] > 0
    assert rows["picture.txt"]["状态"] == "✗ 失败" and "二进制" in rows["picture.txt"]["错误"]
    chars = {src["path"]: src["characters"] for src in manifest["sources"]}
    assert rows["novel.txt"]["字数"] == chars["novel.txt"] > 0
    assert rows["novel.txt"]["编码"] == "UTF-8"
    error = rows["picture.txt"]["错误"]  # in zh: the message and what to do, not the English parts
    assert error.startswith("这是二进制文件") and "解决：" in error
    assert not re.search(r"expected|received|fix|NUL", error), error
    assert seen and seen[-1][0] == 1.0
    # what the trainer checks before it starts: the data's tokenizer is the base model's
    from xiaoshuo.training.data import check_tokenizer_matches, find_data

    check_tokenizer_matches(find_data(services.settings.paths.data_dir), str(tiny_model))


def test_prepare_with_no_usable_file_shows_each_error(services, tiny_model: Path, no_network) -> None:
    raw = services.settings.paths.raw_dir
    raw.mkdir(parents=True)
    (raw / "picture.txt").write_bytes(bytes(range(256)) * 50)
    summary, table = h.prepare_data(services, "zh", str(tiny_model))
    assert summary.startswith("**没有准备出数据**") and "怎么办" in summary
    assert table.to_dict("records")[0]["状态"] == "✗ 失败"
    assert not (services.settings.paths.data_dir / "prepared" / "manifest.json").exists()


# ----------------------------------------------------------------------------- progress, runs, adapters
def test_progress_reads_in_chinese(services) -> None:
    log = {"event": "log", "step": 3, "max_steps": 12, "loss": 2.5, "tokens_per_s": 812.4, "eta_s": 65.2}
    assert (
        h.progress_text([log], "zh")
        == "训练中：第 3/12 步 · 损失 2.5000 · 每秒 812 个词元 · 剩余时间 1 分 05 秒"
    )
    assert "ETA 1 min 05 s" in h.progress_text([log], "en")
    assert "估算中" in h.progress_text([{**log, "eta_s": None}], "zh")
    end = {"event": "end", "global_step": 12, "train_loss": 1.25, "eval_loss": None, "seconds": 3725}
    text = h.progress_text([log, end], "zh", run="ui-run")
    assert text.startswith("训练完成：共 12 步") and "训练损失 1.2500" in text and "1 小时 2 分" in text
    assert "「ui-run」" in text
    assert h.progress_text([], "zh", running=True).startswith("训练进程已启动")
    assert h.progress_text([], "zh") == ""
    stopped = h.progress_text([{"event": "stopped", "step": 4, "checkpoint": "/x/checkpoint-4"}], "zh")
    assert "第 4 步" in stopped and "继续训练" in stopped
    frame = h.loss_frame([log, end])
    assert list(frame.itertuples(index=False)) == [(3, 2.5)]
    assert list(frame.columns) == ["步", "损失"] and list(h.loss_frame([], "en").columns) == ["step", "loss"]


def test_resume_choices_and_adapters_have_readable_labels(services, tiny_model: Path) -> None:
    ckpts = services.settings.paths.checkpoints_dir
    run = ckpts / "wuxia"
    for step in (4, 12):
        (run / f"checkpoint-{step}").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run": "wuxia", "created": "2026-11-29T14:03:11+0000"}))
    assert h.resume_choices(services, "zh") == [("wuxia · 第 12 步 · 2026-11-29 14:03", str(run))]
    final = ckpts / "style" / "final_model"
    final.mkdir(parents=True)
    manifest = {"base_model": str(tiny_model), "created": "2026-11-30T09:15:00+0000", "global_step": 60}
    (final / "xiaoshuo_manifest.json").write_text(json.dumps({**manifest, "eval_loss": 0.51234}))
    table = h.adapter_table(services, "zh")
    assert list(table.columns) == ["名称", "基础模型", "训练时间", "步数", "验证损失"]
    assert table.values.tolist() == [["style", tiny_model.name, "2026-11-30 09:15", 60, "0.5123"]]


def test_upload_messages_follow_the_language(tmp_path: Path) -> None:
    bad = tmp_path / "evil.exe"
    bad.write_bytes(b"MZ")
    assert save_uploads([str(bad)], tmp_path / "raw", lang="en")[0] == (
        "✗ evil.exe: unsupported format .exe (use .txt .json .jsonl .epub)"
    )
    assert "不支持的格式" in save_uploads([str(bad)], tmp_path / "raw")[0]


# ----------------------------------------------------------------------------- the page a novelist reads
def _build(services, lang: str = "zh") -> tuple[gr.Blocks, dict]:
    with gr.Blocks() as demo:
        page = build_train_tab(services, lang, gr.Dropdown())
    return demo, page


def _by_id(demo: gr.Blocks, elem_id: str):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _inside(block, container) -> bool:
    parent = getattr(block, "parent", None)
    while parent is not None:
        if parent is container:
            return True
        parent = getattr(parent, "parent", None)
    return False


def test_the_page_explains_itself_and_folds_what_is_rarely_changed(services) -> None:
    demo, _ = _build(services)
    intro = _by_id(demo, "train-intro").value
    assert "文风适配器" in intro and "上传" in intro and "准备数据" in intro and "开始训练" in intro
    after = _by_id(demo, "train-after").value
    assert "创作" in after and "评估文风" in after
    advanced = _by_id(demo, "train-advanced")
    assert advanced.open is False and advanced.label == "高级设置"
    for field in ("train-tokenizer", "train-batch", "train-accum", "train-lr", "train-lora-r", "train-seq"):
        block = _by_id(demo, field)
        assert _inside(block, advanced), field
        assert block.info and len(block.info) < 80, field  # one line on what it does
    assert "词元" in _by_id(demo, "train-tokenizer").info and "容量" in _by_id(demo, "train-lora-r").info
    assert "攒够" in _by_id(demo, "train-accum").info
    for field in ("train-base-model", "train-run", "train-epochs", "train-max-steps"):
        assert not _inside(_by_id(demo, field), advanced), field  # what a writer decides stays in sight
    command_box = _by_id(demo, "train-command-box")
    assert command_box.open is False and command_box.label == "等价命令"
    assert _inside(_by_id(demo, "train-command"), command_box)
    # the per-file table shows its Chinese headers before any data (Gradio's default is 1 2 3)
    headers = _by_id(demo, "train-prepare-table").value["headers"]
    assert headers == ["文件", "状态", "字数", "编码", "章节", "样本", "错误"]
    curve = _by_id(demo, "train-loss")
    assert (curve.x, curve.y) == ("步", "损失")


def test_the_chinese_page_shows_no_english_words(services, tiny_model: Path, no_network) -> None:
    from .visible import latin_words, visible_texts

    raw = services.settings.paths.raw_dir
    raw.mkdir(parents=True)
    (raw / "novel.txt").write_text(TINY_CORPUS * 3, "utf-8")
    (raw / "picture.txt").write_bytes(bytes(range(256)) * 50)
    args = _args(h.form_defaults(services, "zh", cuda=False))
    summary, table = h.prepare_data(services, "zh", str(tiny_model))
    estimate = h.estimate_text(services, "zh", *args)
    demo, page = _build(services)  # opened after preparing: the summary and table are on the page
    texts = visible_texts(demo)
    assert any("每个文件" in x for x in texts) and any("数据已准备好" in x for x in texts)
    texts += [summary, estimate, *table.columns, *(str(v) for v in table.to_numpy().ravel())]
    loaded = page["on_load"]()[len(h.FIELDS) + 1 :]  # not the form's values nor the folded command
    texts += [v for v in loaded if isinstance(v, str)]
    assert any("现有文字" in v for v in texts) and any("本机预计用时" in v for v in texts)
    log = {"event": "log", "step": 3, "max_steps": 12, "loss": 2.5, "tokens_per_s": 812.4, "eta_s": 65.2}
    end = {"event": "end", "global_step": 12, "train_loss": 1.2, "eval_loss": 1.3, "seconds": 70}
    texts += [h.progress_text([log], "zh"), h.progress_text([log, end], "zh", run="文风")]
    texts += [h.about(7200, "zh"), h.duration(95, "zh")]
    found = {word for text in texts for word in latin_words(text, ids=[tiny_model.name])}
    assert not found, f"English on the Chinese 训练 page: {sorted(found)}"
    # the check can fail: the English page is full of such words
    english = visible_texts(_build(services, "en")[0])
    assert len({w for text in english for w in latin_words(text)}) > 20


def test_the_estimate_follows_uploads_and_the_settings(services, tmp_path: Path) -> None:
    values = h.form_defaults(services, "zh", cuda=False)
    values["base_model"] = "Qwen/Qwen2.5-1.5B-Instruct"  # a known size: the time can be estimated
    cpu = ()
    before = h.estimate_text(services, "zh", *_args(values), gpus=cpu)
    # chunk 128 tokens × 1.4 字, 16 samples a step, 3 epochs, 10 % kept back: 20 steps need 2.1 万字
    assert "至少约 2.1 万字" in before and "还没有训练数据" in before and "预计用时" not in before
    book = tmp_path / "book.txt"
    book.write_text("雨夜归人。" * 30_000, "utf-8")  # 15 万字
    message, after = h.upload_clicked(services, "zh", [str(book)], *_args(values))
    assert "✓ book.txt" in message
    assert "现有文字**：约 15 万字" in after and "按文件大小粗算" in after and "✓ 文字充足" in after
    time_line = next(line for line in after.split("\n\n") if "本机预计用时" in line)
    assert re.search(r"本机预计用时：(约 [\d.]+ (分钟|小时|天)|不到 1 分钟)", time_line), time_line
    assert "粗略估算" in time_line and "核处理器" in time_line
    longer = h.estimate_text(services, "zh", *_args({**values, "epochs": 30}), gpus=cpu)
    assert longer != after and "至少约" in longer  # the settings change the needs and the time
    gpu = ({"index": 0, "name": "NVIDIA H200", "total_gib": 139.8, "free_gib": 139.0},)
    assert "显卡（139.8 GB 显存）" in h.estimate_text(services, "zh", *_args(values), gpus=gpu)
    # a rate measured here in an earlier run of the same model replaces the rough figure
    logs = services.settings.paths.logs_dir
    logs.mkdir(parents=True)
    start = {"event": "start", "config": {"model": {"base_model": values["base_model"]}}}
    step = {"event": "log", "step": 10, "tokens_per_s": 1234.0}
    (logs / "train-first.jsonl").write_text(json.dumps(start) + "\n" + json.dumps(step) + "\n", "utf-8")
    measured = h.estimate_text(services, "zh", *_args(values), gpus=cpu)
    assert "上次训练「first」的实测速度：每秒 1,234 个词元" in measured
    values["lr"] = 0  # an incomplete form says so instead of a number
    assert h.estimate_text(services, "zh", *_args(values)).startswith("（参数不完整")


def test_durations_read_as_a_writer_plans(services) -> None:
    assert [h.about(s, "zh") for s in (30, 25 * 60, 3.5 * 3600, 20 * 3600, 3 * 86400)] == [
        "不到 1 分钟",
        "约 25 分钟",
        "约 3.5 小时",
        "约 20 小时",
        "约 3 天",
    ]
    assert (h.chars_text(340_878, "zh"), h.chars_text(8_000, "zh"), h.chars_text(1_701_205, "zh")) == (
        "34 万字",
        "8,000 字",
        "170 万字",
    )
    assert h.chars_text(340_878, "en") == "340,878 characters"


def test_the_eval_command_names_the_newest_adapter(services, tiny_model: Path) -> None:
    assert h.eval_command(services, "zh") == "（还没有训练好的适配器）"
    for name, created in (("old", "2026-11-01T00:00:00+0000"), ("new", "2026-11-30T09:15:00+0000")):
        final = services.settings.paths.checkpoints_dir / name / "final_model"
        final.mkdir(parents=True)
        manifest = {"base_model": str(tiny_model), "created": created}
        (final / "xiaoshuo_manifest.json").write_text(json.dumps(manifest))
    command = h.eval_command(services, "zh")
    data_dir = services.settings.paths.data_dir
    assert f"eval style --data {data_dir} --adapter " in command and "/new/final_model" in command
    assert f"model.base_model={tiny_model}" in command


def test_prepare_on_the_page_builds_compose_samples_when_the_config_asks(
    make_services, tiny_model: Path, no_network
) -> None:
    """data.sample_format = "compose": the page passes the writer's prompt builder (it used to get no
    compose samples at all, or an error)."""
    services = make_services(overrides={"data.sample_format": "compose"})
    raw = services.settings.paths.raw_dir
    raw.mkdir(parents=True)
    (raw / "novel.txt").write_text(TINY_CORPUS * 3, "utf-8")
    summary, _ = h.prepare_data(services, "zh", str(tiny_model))
    assert summary.startswith("**数据已准备好**"), summary
    manifest = json.loads((services.settings.paths.data_dir / "prepared" / "manifest.json").read_text())
    assert manifest["compose"]["chapters"], manifest.get("compose")
