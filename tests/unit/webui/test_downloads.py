"""设置 → 下载模型 without a browser (issue 26 item 7): the panel offers the missing model, else the one
``auto`` means on this machine with the reason, and a short list with sizes — never the demo's temporary
model folder; its words are Chinese in zh mode.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from xiaoshuo.model_names import auto_model
from xiaoshuo.testing import EngineHolderStub as Holder
from xiaoshuo.webui.pages.downloads import handlers as h
from xiaoshuo.webui.pages.downloads.layout import download_panel

from .visible import latin_words, visible_texts

CPU: tuple = ()
H200 = ({"index": 0, "name": "NVIDIA H200", "total_gib": 139.8, "free_gib": 139.0},)
GPU_12 = ({"index": 0, "name": "RTX 3060", "total_gib": 12.0, "free_gib": 11.0},)
GPU_6 = ({"index": 0, "name": "RTX 2060", "total_gib": 6.0, "free_gib": 5.0},)


def _demo_services(make_services, tmp_path: Path):
    """Like ``webui --demo``: the engine runs a model from a temporary folder, the config names that path."""
    folder = tmp_path / "xiaoshuo-demo-abc" / "demo-model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}", "utf-8")
    holder = Holder(state="ready", model=str(folder), backend="vllm")
    return make_services(holder, {"model.base_model": str(folder)}), folder


def _panel(services, lang: str = "zh") -> gr.Blocks:
    with gr.Blocks() as demo:
        download_panel(services, lang)
    return demo


def _by_id(demo: gr.Blocks, elem_id: str):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_the_demo_offers_the_recommended_model_not_its_temporary_folder(
    make_services, tmp_path: Path
) -> None:
    services, folder = _demo_services(make_services, tmp_path)
    assert h.missing_model(services) is None
    assert h.wanted(services, CPU) == auto_model("llm", CPU)[0] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert h.wanted(services, H200) == "Qwen/Qwen2.5-7B-Instruct"
    demo = _panel(services)
    box = _by_id(demo, "download-model")
    assert box.value == h.recommended() and box.allow_custom_value  # any hub id may be typed
    shown = "\n".join(visible_texts(demo)) + _by_id(demo, "download-command").value
    assert str(folder) not in shown and "demo-model" not in shown
    assert _by_id(demo, "download-command").value == f"xiaoshuo model pull {h.recommended()}"
    assert _by_id(demo, "download-command-box").open is False  # the command is folded away
    assert "本机推荐" in _by_id(demo, "download-help").value


def test_the_list_is_short_with_sizes_and_marks_the_recommendation(make_services, tmp_path: Path) -> None:
    services, _ = _demo_services(make_services, tmp_path)
    choices = h.choices(services, "zh", CPU)
    assert [value for _, value in choices] == [
        "Qwen/Qwen2.5-1.5B-Instruct",
        "Qwen/Qwen2.5-3B-Instruct",
        "Qwen/Qwen2.5-7B-Instruct",
    ]
    labels = dict((v, label) for label, v in choices)
    assert labels["Qwen/Qwen2.5-1.5B-Instruct"] == "Qwen/Qwen2.5-1.5B-Instruct（约 3.1 GB） · 本机推荐"
    assert labels["Qwen/Qwen2.5-7B-Instruct"] == "Qwen/Qwen2.5-7B-Instruct（约 15.2 GB）"
    assert (
        "本机推荐"
        in dict((v, label) for label, v in h.choices(services, "zh", H200))["Qwen/Qwen2.5-7B-Instruct"]
    )


def test_the_reason_follows_this_machine() -> None:
    assert h.why("zh", CPU).startswith("**本机推荐 Qwen/Qwen2.5-1.5B-Instruct**：没有检测到显卡")
    assert "139.8 GB 显存（至少 16 GB）" in h.why("zh", H200) and "7B" in h.why("zh", H200)
    assert "Qwen/Qwen2.5-3B-Instruct" in h.why("zh", GPU_12) and "12 GB 显存（8–16 GB）" in h.why(
        "zh", GPU_12
    )
    assert "6 GB 显存（不到 8 GB）" in h.why("zh", GPU_6)
    assert h.why("en", CPU).startswith("**Recommended here: Qwen/Qwen2.5-1.5B-Instruct**")


def test_a_missing_configured_model_comes_first(make_services) -> None:
    services = make_services(Holder(state="error", model="org/not-downloaded"), {"model.base_model": "org/x"})
    assert h.wanted(services, CPU) == "org/not-downloaded"
    assert h.choices(services, "zh", CPU)[0] == ("org/not-downloaded", "org/not-downloaded")
    assert h.help_text(services, "zh", CPU).startswith("**当前配置的模型还没有下载**：org/not-downloaded")
    demo = _panel(services)
    assert _by_id(demo, "download-model").value == "org/not-downloaded"
    assert _by_id(demo, "download-command").value == "xiaoshuo model pull org/not-downloaded"
    assert h.command(" org/other ") == "xiaoshuo model pull org/other" and h.command(None) == ""


def test_the_chinese_panel_shows_no_english_words(make_services, tmp_path: Path) -> None:
    services, _ = _demo_services(make_services, tmp_path)
    texts = visible_texts(_panel(services))
    texts += [h.why("zh", g) for g in (CPU, H200, GPU_12, GPU_6)]
    state = {"state": "downloading", "model": "org/tiny", "done": 1024**3, "total": 2 * 1024**3}
    texts += [
        h.progress_text(state),
        h.progress_text({"state": "cancelled"}),
        h.progress_text({"state": "starting"}),
    ]
    found = {w for text in texts for w in latin_words(text) if w != "GiB"}
    assert not found, f"English on the Chinese 下载模型 panel: {sorted(found)}"
    english = {w for text in visible_texts(_panel(services, "en")) for w in latin_words(text)}
    assert {"Download", "Source"} <= english  # the check can fail
