"""The WebUI before a model is on disk: ``--demo`` on a model built on the spot, and the download offer."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from xiaoshuo import config
from xiaoshuo.cli import main
from xiaoshuo.testing import free_port


def _page_config(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as r:
        return json.loads(r.read())


def _component(cfg: dict, elem_id: str) -> dict:
    return next(c for c in cfg["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_demo_mode_runs_the_whole_app_on_a_random_model_with_a_banner(tmp_path: Path) -> None:
    from xiaoshuo.engine import GenerationRequest, SamplingSettings
    from xiaoshuo.webui.launch import launch

    port = free_port()
    user = config.load(env={}, cwd=tmp_path, overrides={"webui.port": port})
    demo, services = launch(user, backend="transformers", block=False, demo_dir=tmp_path / "demo")
    try:
        services.engine.wait(timeout=300)
        assert services.engine.status()[0] == "ready", services.engine.status()
        s = services.settings
        assert services.demo and Path(s.model.base_model).parent == tmp_path / "demo"
        assert s.memory.embedding_model == "none"
        for folder in (s.paths.data_dir, s.paths.checkpoints_dir, s.paths.logs_dir, s.paths.models_dir):
            assert Path(folder).is_relative_to(tmp_path / "demo"), folder  # nothing in the user's folders
        banner = _component(_page_config(port), "demo-banner")["props"]["value"]
        assert "演示模式" in banner and "随机" in banner and "熟悉界面" in banner
        result = services.engine.get().generate(
            GenerationRequest(prompt="夜色", sampling=SamplingSettings(temperature=0.0, max_tokens=4))
        )
        assert result.candidates[0].token_ids  # the whole app works, on random weights
    finally:
        services.close()
        demo.close()


def test_a_missing_model_is_offered_for_download_not_fetched_silently(tmp_path: Path) -> None:
    from xiaoshuo.webui.launch import launch

    port = free_port()
    settings = config.load(
        env={},
        cwd=tmp_path,
        overrides={
            "webui.port": port,
            "model.base_model": "org/not-downloaded",
            "memory.embedding_model": "none",
            "paths.data_dir": str(tmp_path / "data"),
            "paths.models_dir": str(tmp_path / "models"),
            "paths.checkpoints_dir": str(tmp_path / "checkpoints"),
            "paths.logs_dir": str(tmp_path / "logs"),
        },
    )
    demo, services = launch(settings, backend="transformers", block=False)
    try:
        services.engine.wait(timeout=60)
        state, message = services.engine.status()
        assert state == "error" and "xiaoshuo model pull org/not-downloaded" in message, message
        assert "下载模型" in message
        cfg = _page_config(port)
        assert _component(cfg, "download-model")["props"]["value"] == "org/not-downloaded"
        assert _component(cfg, "download-source")["props"]["value"] == "auto"
        assert "org/not-downloaded" in _component(cfg, "download-help")["props"]["value"]
        command = _component(cfg, "download-command")["props"]["value"]
        assert command == "xiaoshuo model pull org/not-downloaded"
        assert not any(c.get("props", {}).get("elem_id") == "demo-banner" for c in cfg["components"])
    finally:
        services.close()
        demo.close()


def test_webui_demo_flag_reaches_launch_with_a_temp_folder(monkeypatch, clean_env, tmp_path: Path) -> None:
    import xiaoshuo.webui.launch as launch_module

    seen = {}

    def fake_launch(settings, **kw):
        seen.update(kw, existed=kw["demo_dir"] is not None and kw["demo_dir"].is_dir())

    monkeypatch.setattr(launch_module, "launch", fake_launch)
    monkeypatch.chdir(tmp_path)
    assert main(["webui", "--demo"]) == 0
    assert seen["existed"] and not seen["demo_dir"].exists()  # a temp folder, removed afterwards
    assert main(["webui"]) == 0 and seen["demo_dir"] is None
