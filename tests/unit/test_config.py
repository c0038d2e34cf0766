"""Settings: seed defaults, precedence, provenance, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.errors import ConfigError

# model.base_model and memory.embedding_model default to "auto" (the seed's 7B / bge-m3 on a big GPU,
# smaller models on CPU): tests/unit/test_models.py checks what they resolve to.
SEED_DEFAULTS = {
    "model.load_in_4bit": True,
    "model.lora_r": 64,
    "model.vllm_max_model_len": 32768,
    "model.vllm_gpu_memory_utilization": 0.85,
    "training.num_train_epochs": 3,
    "training.per_device_train_batch_size": 2,
    "training.gradient_accumulation_steps": 8,
    "training.learning_rate": 2e-4,
    "training.max_seq_length": 2048,
    "training.gradient_checkpointing": True,
    "memory.max_memory_items": 1000,
    "webui.host": "127.0.0.1",
    "webui.port": 7860,
    "paths.data_dir": Path("data"),
    "paths.checkpoints_dir": Path("checkpoints"),
    "paths.logs_dir": Path("logs"),
    "paths.models_dir": Path("models"),
}


def _load(tmp_path: Path, **kw):
    kw.setdefault("env", {})
    kw.setdefault("cwd", tmp_path)
    return config.load(**kw)


def test_seed_defaults_and_sources(tmp_path: Path) -> None:
    settings = _load(tmp_path)
    for key, value in SEED_DEFAULTS.items():
        assert settings.get(key) == value, key
        assert settings.source_of(key) == "default"
    assert settings.config_file is None
    assert settings.paths.raw_dir == Path("data/raw")
    assert settings.paths.chroma_dir == Path("data/chroma_db")


def test_precedence_toml_env_cli(tmp_path: Path) -> None:
    toml = tmp_path / "my.toml"
    toml.write_text("[training]\nlearning_rate = 1e-3\nnum_train_epochs = 5\n[webui]\nport = 9000\n", "utf-8")
    settings = _load(
        tmp_path,
        config_file=toml,
        env={"XIAOSHUO_TRAINING__LEARNING_RATE": "1e-4", "XIAOSHUO_WEBUI__PORT": "9100"},
        overrides={"webui.port": 9200},
    )
    assert settings.training.num_train_epochs == 5
    assert settings.source_of("training.num_train_epochs") == f"config.toml ({toml})"
    assert settings.training.learning_rate == pytest.approx(1e-4)
    assert settings.source_of("training.learning_rate") == "env XIAOSHUO_TRAINING__LEARNING_RATE"
    assert settings.webui.port == 9200
    assert settings.source_of("webui.port") == "cli"
    assert settings.source_of("model.lora_r") == "default"


def test_config_toml_found_in_cwd_and_via_env(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[model]\nbase_model = "local/dir"\n', "utf-8")
    assert _load(tmp_path).model.base_model == "local/dir"
    other = tmp_path / "other.toml"
    other.write_text("[model]\nlora_r = 8\n", "utf-8")
    settings = _load(tmp_path, env={"XIAOSHUO_CONFIG": str(other)})
    assert settings.model.lora_r == 8
    assert settings.config_file == other


def test_env_types_bool_and_json_list(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        env={
            "XIAOSHUO_MODEL__LOAD_IN_4BIT": "false",
            "XIAOSHUO_MODEL__LORA_TARGET_MODULES": '["q_proj", "v_proj"]',
            "XIAOSHUO_UNRELATED": "ignored (no section separator)",
        },
    )
    assert settings.model.load_in_4bit is False
    assert settings.model.lora_target_modules == ["q_proj", "v_proj"]


@pytest.mark.parametrize(
    ("env", "key", "value"),
    [
        ({"XIAOSHUO_TRAINING__LEARNING_RATE": "fast"}, "training.learning_rate", "'fast'"),
        ({"XIAOSHUO_WEBUI__PORT": "70000"}, "webui.port", "'70000'"),
        ({"XIAOSHUO_ENGINE__BACKEND": "llamacpp"}, "engine.backend", "'llamacpp'"),
        ({"XIAOSHUO_MODEL__VLLM_GPU_MEMORY_UTILIZATION": "1.5"}, "model.vllm_gpu_memory_utilization", "1.5"),
    ],
)
def test_wrong_type_names_key_value_and_form(tmp_path: Path, env, key, value) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, env=env)
    message = str(info.value)
    assert key in message
    assert value in message
    assert "expected" in message
    assert next(iter(env)) in message  # names where the bad value came from


def test_wrong_type_in_toml(tmp_path: Path) -> None:
    toml = tmp_path / "config.toml"
    toml.write_text('[training]\nper_device_train_batch_size = "two"\n', "utf-8")
    with pytest.raises(ConfigError, match=r"training\.per_device_train_batch_size") as info:
        _load(tmp_path)
    assert "'two'" in str(info.value) and "int" in str(info.value)


@pytest.mark.parametrize(
    "toml_text",
    ["[training]\nlearnig_rate = 1e-4\n", "[trainig]\nlearning_rate = 1e-4\n", "learning_rate = 1\n"],
)
def test_unknown_keys_in_toml_are_errors(tmp_path: Path, toml_text: str) -> None:
    (tmp_path / "config.toml").write_text(toml_text, "utf-8")
    with pytest.raises(ConfigError, match="unknown config key"):
        _load(tmp_path)


def test_unknown_key_suggests_close_match(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.learning_rate") as info:
        _load(tmp_path, env={"XIAOSHUO_TRAINING__LEARNIN_RATE": "1e-4"})
    assert "XIAOSHUO_TRAINING__LEARNIN_RATE" in str(info.value)
    with pytest.raises(ConfigError, match="unknown config key"):
        _load(tmp_path, overrides={"webui.prot": 1})


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[training\nx=1", "utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        _load(tmp_path)
    with pytest.raises(ConfigError, match="not found") as info:
        _load(tmp_path, config_file=tmp_path / "nope.toml")
    assert "nope.toml" in str(info.value)
    with pytest.raises(ConfigError, match="XIAOSHUO_CONFIG"):
        _load(tmp_path, env={"XIAOSHUO_CONFIG": str(tmp_path / "gone.toml")})


def test_parse_assignment() -> None:
    assert config.parse_assignment("training.learning_rate=1e-4") == ("training.learning_rate", "1e-4")
    assert config.parse_assignment('model.lora_target_modules=["q_proj"]') == (
        "model.lora_target_modules",
        ["q_proj"],
    )
    with pytest.raises(ConfigError, match="key=value"):
        config.parse_assignment("training.learning_rate")


def test_settings_are_immutable_and_secret_masked(tmp_path: Path) -> None:
    settings = _load(tmp_path, env={"XIAOSHUO_ENGINE__OPENAI_API_KEY": "sk-secret"})
    with pytest.raises(ValueError):
        settings.training.learning_rate = 1.0  # type: ignore[misc]
    assert "sk-secret" not in str(settings.to_plain())
    assert settings.to_plain(reveal_secrets=True)["engine"]["openai_api_key"] == "sk-secret"
    assert settings.engine.openai_api_key.get_secret_value() == "sk-secret"


def test_every_key_is_documented() -> None:
    for section, fields in config.all_keys().items():
        for name, description in fields.items():
            assert description.strip(), f"{section}.{name} has no description"
