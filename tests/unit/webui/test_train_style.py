"""训练 → 评估文风 without a browser (issue 21 item 6): a finished adapter is measured on the loaded engine
against the prepared data's held-out text; the page shows the verdict in words, a table and a chart, and
the summary is kept in the adapter's manifest.

The engine is scripted: with the adapter it writes the author's real continuation, without it the same
characters shuffled — so the adapter must come out closer, by the whole distance.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import gradio as gr
import pytest

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.testing import EngineHolderStub as Holder
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.webui.pages.train import handlers as h
from xiaoshuo.webui.pages.train.layout import build_train_tab

from .visible import latin_words

PARA = (
    "夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，站在城门外的老槐树下，望着远处渐渐熄灭的灯火。"
    "“你终于来了。”身后传来一个清冷的声音。林远没有回头，只是轻轻叹了口气：“师姐，十年了，你还是这样。”"
    "苏晚晴从阴影里走出来，手里握着一柄长剑，剑鞘上刻着一朵小小的梅花。她看着他，眼中有说不清的情绪。"
)


class AuthorEngine(ScriptedEngine):
    """With the adapter: the author's real continuation; without: its characters shuffled."""

    def __init__(self, refs: dict[str, str], **kw) -> None:
        super().__init__(chunk=50, **kw)
        self.refs = refs

    def respond(self, request) -> str:
        ref = self.refs[request.prompt]
        if request.lora:
            return ref
        chars = list(ref)
        random.Random(len(ref)).shuffle(chars)
        return "".join(chars)


@pytest.fixture
def trained(make_services, tmp_path: Path):
    """Prepared data with a val split, a trained adapter ``style`` and an engine that serves it."""
    from xiaoshuo.eval.style import held_out_texts, passages_from_texts

    services = make_services(Holder(state="loading"))
    data = services.settings.paths.data_dir
    (data / "val").mkdir(parents=True)
    (data / "train").mkdir()
    rows = [{"text": PARA * 4}, {"text": PARA[::-1] * 4}]
    (data / "val" / "continuation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (data / "train" / "continuation.jsonl").write_text('{"text": "训练"}\n', "utf-8")
    final = services.settings.paths.checkpoints_dir / "style" / "final_model"
    final.mkdir(parents=True)
    (final / "adapter_config.json").write_text("{}", "utf-8")
    manifest = {"run": "style", "base_model": "scripted", "created": "2026-12-01T10:00:00+0000"}
    manifest["eval_loss"] = 1.5
    (final / "xiaoshuo_manifest.json").write_text(json.dumps(manifest), "utf-8")
    passages = passages_from_texts(held_out_texts(data), samples=h.STYLE_SAMPLES, chars=600, seed=0)
    engine = AuthorEngine({p.prefix: p.reference for p in passages})
    engine.register_adapter("style", final)
    services.engine = Holder(engine, model="scripted")
    return services, final


def test_style_eval_shows_the_adapter_closer_and_keeps_the_result(trained) -> None:
    services, final = trained
    seen = []
    summary, table, chart = h.evaluate_style(services, "zh", "style", progress=seen.append)
    assert seen  # the stages were reported
    assert summary.startswith("**适配器更像你的书**") and "近了 100%" in summary and "→ 0.000" in summary
    rows = {row["指标"]: row for row in table.to_dict("records")}
    assert list(table.columns) == ["指标", "基础模型", "适配器", "提升"]
    assert rows["文风距离（总）"]["适配器"] == 0.0 and rows["文风距离（总）"]["提升"] > 0.1
    assert rows["词组"]["基础模型"] > 0.3 and rows["用字"]["基础模型"] < 1e-6  # the same characters, shuffled
    assert len(chart.data) == 2 and chart.data[0].name == "基础模型" and chart.data[1].name == "适配器"
    texts = [summary, *table.columns, *(str(v) for v in table["指标"])]
    assert not {w for text in texts for w in latin_words(text)}
    kept = json.loads((final / "xiaoshuo_manifest.json").read_text("utf-8"))
    assert kept["style_eval"]["adapter_style_distance"] == 0.0 and kept["eval_loss"] == 1.5


def test_style_eval_needs_an_adapter_and_the_page_offers_the_trained_ones(trained) -> None:
    services, _ = trained
    with pytest.raises(XiaoshuoError, match="选择要评估的适配器"):
        h.evaluate_style(services, "zh", None)
    with gr.Blocks() as demo:
        page = build_train_tab(services, "zh", gr.Dropdown())
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "train-style-adapter")
    assert box.value == "style" and [c[1] for c in box.choices] == ["style"]
    table = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "train-style-table")
    assert table.value["headers"] == ["指标", "基础模型", "适配器", "提升"]
    assert len(page["on_load"]()) == len(page["load_outputs"])
