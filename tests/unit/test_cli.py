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


# ------------------------------------------------------------------------- shared options (cli/options.py)
MODEL_BACKEND = "recording-model-test"


class _Recorded(Exception):
    pass


@pytest.fixture
def pulled(tmp_path: Path, clean_env):
    """A data folder with a hub id "org/m" pulled under models/, a novel "a" with chapter 1 written, and a
    backend that records the model it is asked to load, then stops the command (no model is loaded)."""
    from xiaoshuo.engine import register_backend
    from xiaoshuo.errors import XiaoshuoError

    seen: list[str] = []

    def record(cfg, model, adapters):
        seen.append(model)
        raise XiaoshuoError("recorded the model (test)", received=model)

    register_backend(MODEL_BACKEND, record)
    folder = tmp_path / "models" / "org" / "m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"max_position_embeddings": 4096}', "utf-8")
    clean_env.chdir(tmp_path)
    clean_env.setenv("XIAOSHUO_PATHS__MODELS_DIR", str(tmp_path / "models"))
    clean_env.setenv("XIAOSHUO_MEMORY__EMBEDDING_MODEL", "none")
    clean_env.setenv("HF_HUB_OFFLINE", "1")
    outline = tmp_path / "outline.json"
    chapters = [{"title": "雨夜"}, {"title": "渡口"}]
    outline.write_text(json.dumps({"volumes": [{"title": "卷一", "chapters": chapters}]}), "utf-8")
    (tmp_path / "ch1.txt").write_text("夜色如墨，林远撑着一把旧油纸伞走过长街。", "utf-8")
    (tmp_path / "book.txt").write_text("第一章 雨夜\n\n夜色如墨。\n\n第二章 渡口\n\n天亮了。\n", "utf-8")
    for args in (
        ["novel", "new", "a", "--title", "甲"],
        ["outline", "import", str(outline), "--novel", "a"],
        ["chapter", "set", "--novel", "a", "1", "--file", str(tmp_path / "ch1.txt")],
    ):
        assert main(args) == 0, args
    return folder, seen


ENGINE = ["--backend", MODEL_BACKEND, "--model", "org/m"]
MODEL_COMMANDS = {
    "inference": ["inference", "-p", "你好", *ENGINE],
    "outline generate": ["outline", "generate", "-n", "a", "--chapters", "2", "--no-memory", *ENGINE],
    "write chapter": ["write", "chapter", "2", "-n", "a", "--no-memory", *ENGINE],
    "write continue": ["write", "continue", "-n", "a", "--no-memory", *ENGINE],
    "write rewrite": ["write", "rewrite", "-n", "a", "--chapter", "1", "--start", "0", "--end", "4", *ENGINE],
    "chapter summarize": ["chapter", "summarize", "-n", "a", "1", *ENGINE],
    "memory extract": ["memory", "extract", "-n", "a", "--chapter", "1", *ENGINE],
    "check chapter": ["check", "chapter", "1", "-n", "a", "--judge", *ENGINE],
    "novel import --extract": ["novel", "import", "book.txt", "-n", "b", "--extract", *ENGINE],
}


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_model_flag_finds_a_pulled_hub_id(pulled, command: str, capsys) -> None:
    """``--model owner/name`` of a pulled model reaches the engine as ``models/owner/name`` (issue 19.15):
    the resolver of ``model.base_model``, offline, in every command that takes ``--model``."""
    folder, seen = pulled
    capsys.readouterr()
    assert main(MODEL_COMMANDS[command]) == 2
    assert "recorded the model" in capsys.readouterr().err
    assert [Path(m).resolve() for m in seen] == [folder.resolve()]


def test_serve_and_webui_model_flags_find_a_pulled_hub_id(pulled, monkeypatch, capsys) -> None:
    import xiaoshuo.webui.launch as launch_module

    folder, _ = pulled
    capsys.readouterr()
    assert main(["serve", "--dry-run", "--model", "org/m"]) == 0
    cmd = capsys.readouterr().out.split()
    assert cmd[cmd.index("--model") + 1] == str(folder)
    got: dict = {}
    monkeypatch.setattr(launch_module, "launch", lambda settings, **kw: got.update(kw))
    assert main(["webui", "-m", "org/m"]) == 0
    assert got["model"] == str(folder)
    assert main(["webui", "--model", "./not/pulled"]) == 0 and got["model"] == "./not/pulled"  # as written
    assert main(["webui"]) == 0 and got["model"] is None  # not given: model.base_model


def test_the_webui_model_box_finds_a_pulled_hub_id(pulled) -> None:
    """设置 → 换模型 (EngineHolder.restart) resolves a typed hub id like ``--model`` does."""
    from xiaoshuo.config import load
    from xiaoshuo.webui.services import EngineHolder

    folder, seen = pulled
    holder = EngineHolder(load(), model="org/m", backend=MODEL_BACKEND, lora={})
    holder._thread.join(timeout=30)
    assert not holder._thread.is_alive()
    assert holder.model == str(folder) and [Path(m) for m in seen] == [folder]


def _cli_sources() -> dict[str, str]:
    import xiaoshuo.cli

    return {p.stem: p.read_text("utf-8") for p in Path(xiaoshuo.cli.__file__).parent.glob("*.py")}


def test_command_modules_share_options_and_never_import_each_other() -> None:
    """Issue 20.7: the shared options are declared once (cli/options.py); no command module imports
    another command module (their helpers live in cli/options.py)."""
    import ast

    from xiaoshuo.cli import COMMAND_MODULES

    for name, source in _cli_sources().items():
        tree = ast.parse(source)
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xiaoshuo.cli.")
        }
        if name in COMMAND_MODULES:
            others = {f"xiaoshuo.cli.{m}" for m in COMMAND_MODULES} - {f"xiaoshuo.cli.{name}"}
            assert not imported & others, (name, imported & others)
        if name == "options":
            continue
        declared = {
            arg.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Option"
            for arg in node.args
            if isinstance(arg, ast.Constant)
        }
        assert not declared & {"--novel", "--slug", "-n", "--backend", "--model", "-m", "--lora"}, name
        # --json is JsonOpt unless the command says what it prints (prepare's manifest, inference's lines)
        assert "--json" not in declared or name in ("prepare", "train", "inference"), name


def test_novel_is_n_everywhere_and_n_is_only_novel(clean_env) -> None:
    """``--novel`` always has ``-n`` (memory's did not) and ``-n`` never means anything else
    (``outline generate -n`` was both ``--novel`` and ``--chapters``)."""
    import click
    import typer

    from xiaoshuo.cli import app

    def commands(cmd: click.Command, path: str):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from commands(sub, f"{path} {name}")

    checked = 0
    for path, cmd in commands(typer.main.get_command(app), "xiaoshuo"):
        for param in cmd.params:
            if "--novel" in param.opts:
                assert "-n" in param.opts, path
                checked += 1
            elif "-n" in param.opts:
                raise AssertionError(f"{path}: -n is {param.opts}")
    assert checked >= 20
