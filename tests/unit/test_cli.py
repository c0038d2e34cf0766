"""The CLI: commands listed, config output with sources, one-line errors, cheap imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xiaoshuo.cli import main
from xiaoshuo.testing import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_commands_via_both_entry_points(tmp_path: Path) -> None:
    for cmd in (
        [sys.executable, "-m", "xiaoshuo", "--help"],
        [sys.executable, str(REPO / "start.py"), "--help"],
    ):
        out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "doctor" in out.stdout and "config" in out.stdout


def test_every_command_module_is_registered(capsys, clean_env) -> None:
    """Each module in COMMAND_MODULES exposes ``app``; its commands (or its group) appear in ``--help``."""
    import importlib

    from xiaoshuo.cli import COMMAND_MODULES

    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    for name in COMMAND_MODULES:
        sub = importlib.import_module(f"xiaoshuo.cli.{name}").app
        commands = [sub.info.name] if sub.info.name else [c.name for c in sub.registered_commands]
        assert commands and all(f" {c} " in listed for c in commands), (name, commands)


def test_cli_import_does_not_load_heavy_libraries() -> None:
    code = (
        "import sys, xiaoshuo.cli, xiaoshuo.config, xiaoshuo.hardware, xiaoshuo.testing, xiaoshuo.engine,"
        " xiaoshuo.memory, xiaoshuo.training, xiaoshuo.data;"
        "print([m for m in ('torch', 'vllm', 'chromadb', 'transformers', 'gradio') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_config_json_has_every_seed_key_with_sources(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[training]\nnum_train_epochs = 4\n", "utf-8")
    out = run_cli(
        "--set",
        "webui.port=8001",
        "config",
        "--json",
        cwd=tmp_path,
        env={"XIAOSHUO_TRAINING__LEARNING_RATE": "1e-4"},
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    settings, sources = data["settings"], data["sources"]
    for key in (
        "model.base_model",
        "model.load_in_4bit",
        "model.lora_r",
        "model.vllm_max_model_len",
        "model.vllm_gpu_memory_utilization",
        "training.num_train_epochs",
        "training.per_device_train_batch_size",
        "training.gradient_accumulation_steps",
        "training.learning_rate",
        "training.max_seq_length",
        "training.gradient_checkpointing",
        "memory.embedding_model",
        "memory.max_memory_items",
        "webui.host",
        "webui.port",
        "paths.data_dir",
        "paths.checkpoints_dir",
        "paths.logs_dir",
        "paths.models_dir",
    ):
        section, name = key.split(".")
        assert name in settings[section], key
        assert key in sources
    assert settings["training"]["learning_rate"] == pytest.approx(1e-4)
    assert sources["training.learning_rate"] == "env XIAOSHUO_TRAINING__LEARNING_RATE"
    assert settings["training"]["num_train_epochs"] == 4
    assert sources["training.num_train_epochs"].startswith("config.toml")
    assert settings["webui"]["port"] == 8001
    assert sources["webui.port"].startswith("cli")
    assert data["config_file"] == str(tmp_path / "config.toml")


def test_config_table_shows_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env) -> None:
    clean_env.chdir(tmp_path)
    clean_env.setenv("COLUMNS", "200")
    clean_env.setenv("XIAOSHUO_MODEL__LORA_R", "16")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "model.lora_r" in out and "16" in out and "XIAOSHUO_MODEL__LORA_R" in out


@pytest.mark.parametrize("describe", [False, True])
def test_config_table_fits_80_columns_with_every_column_readable(tmp_path: Path, describe: bool) -> None:
    from rich.cells import cell_len

    out = run_cli(
        "--set",
        "webui.port=8001",
        "config",
        *(["--describe"] if describe else []),
        cwd=tmp_path,
        env={"COLUMNS": "80", "XIAOSHUO_MODEL__LORA_R": "16"},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    body = [line for line in lines if line.startswith(("│", "┃", "┏", "┡", "└"))]
    assert len(body) > 40
    assert all(cell_len(line) <= 80 for line in lines), max(lines, key=cell_len)
    assert all(line.rstrip().endswith(("│", "┃", "┓", "┩", "┘")) for line in body), "a column was cut off"
    header = next(line for line in body if "key" in line)
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == ["key", "value", "source"]
    row = next(line for line in body if "model.base_model" in line)
    assert row.rstrip("│ ").endswith("default")
    assert "XIAOSHUO_MODEL__" in out.stdout and "cli (flag or" in out.stdout
    if describe:
        assert "LoRA rank" in out.stdout


def test_bad_value_is_one_line_error_with_nonzero_exit(tmp_path: Path) -> None:
    out = run_cli("config", cwd=tmp_path, env={"XIAOSHUO_TRAINING__LEARNING_RATE": "abc"})
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "training.learning_rate" in lines[0] and "'abc'" in lines[0]


def test_debug_shows_traceback(tmp_path: Path) -> None:
    out = run_cli("--debug", "config", cwd=tmp_path, env={"XIAOSHUO_WEBUI__PORT": "x"})
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "ConfigError" in out.stderr


def test_bad_set_flag_and_unknown_command(tmp_path: Path, capsys, clean_env) -> None:
    clean_env.chdir(tmp_path)
    assert main(["--set", "nonsense", "config"]) == 2
    assert "key=value" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2


def test_version(capsys) -> None:
    from xiaoshuo import __version__

    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_webui_options_reach_launch(tmp_path: Path, monkeypatch, clean_env, capsys) -> None:
    """``webui --concurrency N`` and the other flags arrive at ``webui.launch.launch`` (no server)."""
    import xiaoshuo.webui.launch as launch_module

    seen: dict = {}
    monkeypatch.setattr(launch_module, "launch", lambda settings, **kw: seen.update(settings=settings, **kw))
    clean_env.chdir(tmp_path)
    lora = tmp_path / "ad"
    lora.mkdir()
    assert (
        main(["webui", "--concurrency", "3", "--port", "7999", "--lora", f"s={lora}", "--backend", "openai"])
        == 0
    )
    assert seen["concurrency"] == 3 and seen["lora"] == {"s": str(lora)} and seen["backend"] == "openai"
    assert seen["settings"].webui.port == 7999
    assert main(["webui", "--concurrency", "0"]) == 2
    assert "--concurrency" in capsys.readouterr().err
