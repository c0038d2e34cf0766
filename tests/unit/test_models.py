"""What ``auto`` means on which hardware, where a pulled model is found, and offline in seconds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from xiaoshuo import config, models
from xiaoshuo.hardware import gpu_memory
from xiaoshuo.hf import ModelLoadError, hub_reachable, require_model
from xiaoshuo.testing import run_cli


def _gpu(total: float) -> tuple[dict, ...]:
    return ({"index": 0, "name": "test", "total_gib": total, "free_gib": total},)


@pytest.mark.parametrize(
    ("gpus", "llm", "embed"),
    [
        ((), "Qwen/Qwen2.5-1.5B-Instruct", "BAAI/bge-small-zh-v1.5"),
        (_gpu(6.0), "Qwen/Qwen2.5-1.5B-Instruct", "BAAI/bge-small-zh-v1.5"),
        (_gpu(12.0), "Qwen/Qwen2.5-3B-Instruct", "BAAI/bge-m3"),
        (_gpu(16.0), "Qwen/Qwen2.5-7B-Instruct", "BAAI/bge-m3"),
        (_gpu(80.0) + _gpu(8.0), "Qwen/Qwen2.5-7B-Instruct", "BAAI/bge-m3"),
    ],
)
def test_auto_model_by_hardware(gpus, llm: str, embed: str) -> None:
    name, why = models.auto_model("llm", gpus)
    assert name == llm and name in why and why.startswith("auto:")
    assert models.auto_model("embed", gpus)[0] == embed
    assert name in models.CATALOGUE and embed in models.CATALOGUE


def test_auto_resolves_on_this_machine_and_says_why(tmp_path: Path) -> None:
    if gpu_memory():
        pytest.skip("this machine has an NVIDIA GPU; the CPU choice is checked on CPU machines")
    s = config.load(env={}, cwd=tmp_path)
    assert s.model.base_model == "Qwen/Qwen2.5-1.5B-Instruct"
    assert s.memory.embedding_model == "BAAI/bge-small-zh-v1.5"
    assert "CPU" in s.note_of("model.base_model") and s.source_of("model.base_model") == "default"
    out = run_cli("config", "--json", cwd=tmp_path)
    notes = json.loads(out.stdout)["notes"]  # `xiaoshuo config` says what auto resolved to, and why
    assert notes["model.base_model"] == s.note_of("model.base_model")
    table = run_cli("config", cwd=tmp_path, env={"COLUMNS": "200"}).stdout
    assert "auto: 无 GPU (CPU) → Qwen/Qwen2.5-1.5B-Instruct" in table


def test_an_explicit_model_is_respected(tmp_path: Path) -> None:
    s = config.load(
        env={"XIAOSHUO_MODEL__BASE_MODEL": "Qwen/Qwen2.5-7B-Instruct"},
        cwd=tmp_path,
        overrides={"memory.embedding_model": "none"},
    )
    assert s.model.base_model == "Qwen/Qwen2.5-7B-Instruct" and s.note_of("model.base_model") is None
    assert s.memory.embedding_model == "none"


def test_a_pulled_hub_id_resolves_to_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "org" / "m"
    folder.mkdir(parents=True)
    overrides = {"paths.models_dir": str(tmp_path / "models"), "model.base_model": "org/m"}
    # no config.json yet: not a model, the hub id stays
    assert config.load(env={}, cwd=tmp_path, overrides=overrides).model.base_model == "org/m"
    (folder / "config.json").write_text("{}")
    s = config.load(env={}, cwd=tmp_path, overrides=overrides)
    assert s.model.base_model == str(folder) and "org/m" in s.note_of("model.base_model")
    assert models.configured(s)[0] == ("model.base_model", "org/m", folder)


def test_choose_files_skips_what_no_runtime_needs() -> None:
    files = {
        "config.json": 1,
        "model.safetensors": 10,
        "pytorch_model.bin": 10,
        "onnx/model.onnx": 10,
        "model.onnx_data": 10,
        "tf_model.h5": 10,
        "1_Pooling/config.json": 1,
        ".gitattributes": 1,
    }
    kept = {"config.json": 1, "model.safetensors": 10, "1_Pooling/config.json": 1}
    assert models.choose_files(files) == kept
    # without safetensors the .bin weights are the weights
    assert "pytorch_model.bin" in models.choose_files({"pytorch_model.bin": 10, "config.json": 1})


def test_source_order(tmp_path: Path) -> None:
    s = config.load(env={}, cwd=tmp_path)
    assert models.source_order(s, None) == ["hf", "modelscope"]
    assert models.source_order(s, "modelscope") == ["modelscope"]
    with pytest.raises(models.ModelError, match="auto, hf or modelscope"):
        models.source_order(s, "ollama")
    with pytest.raises(config.ConfigError, match=r"model\.source"):
        config.load(env={}, cwd=tmp_path, overrides={"model.source": "ollama"})


def test_endpoints_follow_config_then_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example/")
    assert models.hf_endpoint(config.load(env={}, cwd=tmp_path)) == "https://mirror.example"
    s = config.load(env={}, cwd=tmp_path, overrides={"model.hf_endpoint": "https://hf-mirror.com"})
    assert models.hf_endpoint(s) == "https://hf-mirror.com"
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://127.0.0.1:1")
    assert models.modelscope_endpoint() == "http://127.0.0.1:1"


def test_offline_and_not_cached_fails_at_once_naming_model_pull(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        require_model("Qwen/Qwen2.5-1.5B-Instruct", setting="model.base_model", models_dir=tmp_path / "m")
    assert time.perf_counter() - start < 2
    message = str(info.value)
    assert message.startswith("离线") and "xiaoshuo model pull Qwen/Qwen2.5-1.5B-Instruct" in message
    assert str(tmp_path / "m" / "Qwen" / "Qwen2.5-1.5B-Instruct") in message
    require_model(str(tmp_path), setting="model.base_model")  # a local folder never asks the hub


def test_hub_probe_is_quick_and_asked_once_per_process() -> None:
    endpoint = "http://127.0.0.1:9"  # refused at once
    hub_reachable.cache_clear()
    start = time.perf_counter()
    ok, detail = hub_reachable(endpoint)
    assert not ok and "after" in detail and time.perf_counter() - start < 5
    assert hub_reachable(endpoint) == (ok, detail)
    assert hub_reachable.cache_info().hits == 1


def test_hub_ids() -> None:
    assert models.is_hub_id("Qwen/Qwen2.5-1.5B-Instruct") and models.is_hub_id("BAAI/bge-small-zh-v1.5")
    for bad in ("./models/x", "/abs/x", "~/x", "org/..", "org/x/y", "x", "org/"):
        assert not models.is_hub_id(bad), bad


def test_plan_refuses_a_path(tmp_path: Path) -> None:
    s = config.load(env={}, cwd=tmp_path)
    with pytest.raises(models.ModelError, match="owner/name"):
        models.plan_pull("./models/mine", s)


def test_remove_a_pulled_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    folder = tmp_path / "models" / "org" / "m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    s = config.load(env={}, cwd=tmp_path, overrides={"paths.models_dir": str(tmp_path / "models")})
    assert [m.name for m in models.list_models(s)] == ["org/m"]
    for outside in ("org/..", "..", "../models"):  # never the models folder itself or above it
        with pytest.raises(models.ModelError):
            models.remove(outside, s)
    assert folder.is_dir()
    assert models.remove("org/m", s) == [str(folder)]
    assert not folder.exists() and models.list_models(s) == []
    with pytest.raises(models.ModelError, match="model list"):
        models.remove("org/m", s)


def _imports_of(path: Path) -> set[str]:
    """Every ``xiaoshuo…`` module a file imports: top level, inside functions and under TYPE_CHECKING."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xiaoshuo"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("xiaoshuo"))
    return found


def test_top_level_modules_import_without_cycles() -> None:
    """Issue 20.6: config → model_names ← hf ← models (config only a type there); the old lazy cycle
    config ↔ models ↔ hf is gone, and no other top-level module closes one."""
    import graphlib

    import xiaoshuo

    root = Path(xiaoshuo.__file__).parent
    modules = {p.stem for p in root.glob("*.py") if not p.stem.startswith("__")}
    graph = {
        name: {m.split(".")[1] for m in _imports_of(root / f"{name}.py") if m.count(".") >= 1}
        & modules - {name}
        for name in modules
    }
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert "models" not in graph["config"] | graph["hf"] and "hf" not in graph["config"]
    assert graph["model_names"] <= {"hardware"}


def test_resolve_model_is_the_resolver_of_base_model_for_flags(tmp_path: Path) -> None:
    """``--model`` and the WebUI's model box use the resolver config uses for ``model.base_model``."""
    folder = tmp_path / "models" / "org" / "m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    s = config.load(env={}, cwd=tmp_path, overrides={"paths.models_dir": str(tmp_path / "models")})
    assert models.resolve_model("org/m", s.paths.models_dir) == str(folder)
    assert models.resolve_model("org/other", s.paths.models_dir) == "org/other"  # not pulled: as written
    assert models.resolve_model(str(tmp_path), s.paths.models_dir) == str(tmp_path)  # a path: as written
    assert models.resolve_model(None, s.paths.models_dir) is None
    assert models.resolve_model("auto", s.paths.models_dir) == models.auto_model("llm")[0]
    with_id = config.load(
        env={},
        cwd=tmp_path,
        overrides={"paths.models_dir": str(tmp_path / "models"), "model.base_model": "org/m"},
    )
    assert with_id.model.base_model == models.resolve_model("org/m", s.paths.models_dir)


def test_a_pulled_tokenizer_id_resolves_too(tmp_path: Path) -> None:
    """``data.tokenizer`` / ``prepare --tokenizer`` / ``memory context --tokenizer`` name a model as well."""
    folder = tmp_path / "models" / "org" / "m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    base = {"paths.models_dir": str(tmp_path / "models")}
    s = config.load(env={}, cwd=tmp_path, overrides={**base, "data.tokenizer": "org/m"})
    assert s.data.tokenizer == str(folder) and "org/m" in s.note_of("data.tokenizer")
    for kept in ("", "builtin-tiny", "auto", "org/other"):
        s = config.load(env={}, cwd=tmp_path, overrides={**base, "data.tokenizer": kept})
        assert s.data.tokenizer == kept and s.note_of("data.tokenizer") is None


def test_the_modelscope_clients_english_retry_warnings_stay_quiet(caplog) -> None:
    """Issue 26 item 13: `model pull --source modelscope` offline printed the client's English retry lines
    (``listing failed (NetworkError), retry in 1s``) before our one-line message."""
    import logging

    from xiaoshuo.models import _quiet_modelscope

    log = logging.getLogger("modelscope_hub.legacy_api")
    with caplog.at_level(logging.WARNING), _quiet_modelscope():
        log.warning("Repo x: listing failed (NetworkError), retry in 1s (1/4)")
        log.error("a real error still shows")
    assert [r.getMessage() for r in caplog.records] == ["a real error still shows"]
    log.warning("after: the level is restored")
    assert caplog.records[-1].getMessage() == "after: the level is restored"
