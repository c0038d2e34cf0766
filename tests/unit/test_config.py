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
        ({"XIAOSHUO_ENGINE__BACKEND": "ollama"}, "engine.backend", "'ollama'"),
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


def test_a_deeply_nested_config_is_a_clear_error_not_a_recursion_traceback(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "utf-8")
    with pytest.raises(ConfigError, match="nested too deeply"):
        _load(tmp_path)


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


@pytest.mark.parametrize("where", ["toml", "env", "cli"])
@pytest.mark.parametrize("key", ["paths.data_dir", "paths.models_dir"])
def test_empty_path_is_refused_not_the_current_folder(tmp_path: Path, where: str, key: str) -> None:
    section, name = key.split(".")
    kw: dict = {}
    if where == "toml":
        (tmp_path / "config.toml").write_text(f'[{section}]\n{name} = ""\n', "utf-8")
    elif where == "env":
        kw["env"] = {f"XIAOSHUO_{section.upper()}__{name.upper()}": " "}
    else:
        kw["overrides"] = dict([config.parse_assignment(f"{key}=")])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        _load(tmp_path, **kw)
    assert "current folder" in str(err.value)
    assert _load(tmp_path, overrides={key: "."}).get(key) == Path(".")  # said explicitly: allowed


def test_a_paths_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x", "utf-8")
    for value in ("afile", "afile/data", str(tmp_path / "afile" / "deeper" / "data")):
        with pytest.raises(ConfigError, match=r"paths\.data_dir.*not a folder") as err:
            _load(tmp_path, overrides={"paths.data_dir": value})
        assert value in str(err.value)
    later = _load(tmp_path, overrides={"paths.data_dir": "not/yet/there"})  # created when first written
    assert later.paths.data_dir == Path("not/yet/there")


def test_xiaoshuo_variables_that_match_no_key_are_warned(tmp_path: Path, caplog) -> None:
    with caplog.at_level("WARNING", logger="xiaoshuo.config"):
        settings = _load(
            tmp_path,
            env={"XIAOSHUO_WEBUI_PORT": "abc", "XIAOSHUO_CONFIG": "", "XIAOSHUO_NONSENSE": "sk-secret-value"},
        )
    assert settings.webui.port == 7860
    text = caplog.text
    assert "XIAOSHUO_WEBUI_PORT" in text and "XIAOSHUO_WEBUI__PORT" in text  # names the one it meant
    assert "XIAOSHUO_NONSENSE" in text and "sk-secret-value" not in text  # never the value
    assert "XIAOSHUO_CONFIG " not in text and len(caplog.records) == 2
    with pytest.raises(ConfigError, match="unknown config key"):  # a double-underscore typo stays an error
        _load(tmp_path, env={"XIAOSHUO_WEBUI__PROT": "1"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("engine.openai_base_url", "localhost:8000/v1"),
        ("engine.openai_base_url", "ftp://host/v1"),
        ("engine.openai_base_url", "http://host:99999/v1"),
        ("engine.openai_base_url", ""),
        ("engine.openai_base_url", "http:///v1"),
        ("memory.chroma_url", "http://host:abc"),
        ("memory.chroma_url", "http://ho st:8000"),
        ("model.hf_endpoint", "hf-mirror.com"),
    ],
)
def test_url_keys_must_be_http_urls(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        _load(tmp_path, overrides={key: value})
    assert "http" in err.value.expected


def test_valid_urls_pass_and_empty_means_default_where_allowed(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        overrides={
            "engine.openai_base_url": " https://api.example.com:8443/v1 ",
            "memory.chroma_url": "",
            "model.hf_endpoint": "https://hf-mirror.com",
        },
    )
    assert settings.engine.openai_base_url == "https://api.example.com:8443/v1"
    assert settings.memory.chroma_url == ""


def test_credentials_inside_urls_are_secrets(tmp_path: Path, capsys, clean_env) -> None:
    import json
    from types import SimpleNamespace

    from xiaoshuo.cli import main
    from xiaoshuo.webui.pages.settings import handlers as settings_page

    secret_urls = {
        "engine.openai_base_url": "https://alice:pa55word@api.example.com/v1?api_key=sk-zzz&x=1",
        "memory.chroma_url": "http://bob:hunter2@chroma.local:8000",
        "model.hf_endpoint": "https://mirror.example.com/?token=hf_secret",
    }
    settings = _load(tmp_path, overrides=secret_urls)
    assert settings.engine.openai_base_url == secret_urls["engine.openai_base_url"]  # the code gets it all
    shown = json.dumps(settings.to_plain())
    rows = json.dumps(settings_page.config_rows(SimpleNamespace(settings=settings)), ensure_ascii=False)
    clean_env.chdir(tmp_path)
    sets = [arg for key, value in secret_urls.items() for arg in ("--set", f"{key}={value}")]
    assert main([*sets, "config", "--json"]) == 0
    assert main([*sets, "config"]) == 0
    cli = capsys.readouterr().out
    for text in (shown, rows, cli):
        for secret in ("pa55word", "alice", "sk-zzz", "hunter2", "hf_secret"):
            assert secret not in text
    assert "api.example.com" in shown and "chroma.local" in rows and "***@" in cli
    with pytest.raises(ConfigError) as err:  # an error quoting the URL masks it too
        _load(tmp_path, overrides={"memory.chroma_url": "http://bob:hunter2@chroma.local:port"})
    assert "hunter2" not in str(err.value) and "chroma.local" in str(err.value)
    assert config.mask_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_model_download_keeps_the_mirror_url_out_of_argv(tmp_path: Path) -> None:
    from xiaoshuo.webui.downloads import ModelDownload

    url = "https://user:hunter2@mirror.example.com"
    job = ModelDownload(_load(tmp_path, overrides={"model.hf_endpoint": url}))
    assert "hunter2" not in " ".join(job.command("org/tiny", "hf"))  # argv is visible to every user (ps)
    assert job.env()["XIAOSHUO_MODEL__HF_ENDPOINT"] == url
