"""`xiaoshuo inference` and `xiaoshuo serve` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xiaoshuo.testing import run_cli


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--top-p", "1.5"], "top_p"),
        (["--stop", ""], "stop"),
        (["--n", "0"], "n"),
        (["--max-tokens", "0"], "max_tokens"),
        (["--lora", "=x"], "--lora"),
        (["--lora", "a=/nowhere", "--adapter", "b"], "adapter"),
        (["--backend", "ollama"], "backend"),  # not a backend (llamacpp is one now)
    ],
)
def test_bad_flags_fail_fast_with_one_line(tmp_path: Path, flags: list[str], needle: str) -> None:
    out = run_cli(
        "--set", "model.base_model=/nonexistent/model", "inference", "--prompt", "x", *flags, cwd=tmp_path
    )
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    out = run_cli(
        "--set",
        "model.base_model=/nonexistent/model",
        "inference",
        "--prompt",
        "x",
        "--backend",
        "transformers",
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "cannot load the model" in out.stderr


def test_inference_json_and_interactive(
    tmp_path: Path, tiny_model: Path, tiny_loras: dict[str, Path]
) -> None:
    base = ["--set", f"model.base_model={tiny_model}", "--set", "model.dtype=float32"]
    out = run_cli(
        *base,
        "inference",
        "--backend",
        "transformers",
        "--prompt",
        "雨夜",
        "--raw",
        "--max-tokens",
        "8",
        "--n",
        "2",
        "--seed",
        "3",
        "--lora",
        f"a={tiny_loras['a']}",
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["index"] for r in rows] == [0, 1]
    assert all(r["text"] and r["finish_reason"] in ("length", "stop") for r in rows)
    chat = run_cli(
        *base,
        "inference",
        "--backend",
        "transformers",
        "--max-tokens",
        "6",
        "-t",
        "0",
        cwd=tmp_path,
        stdin="第一句\n第二句\nexit\n",
    )
    assert chat.returncode == 0, chat.stderr
    assert "interactive" in chat.stderr
    assert chat.stdout.count("你> ") >= 2


def test_serve_dry_run_prints_the_command(
    tmp_path: Path, tiny_model: Path, tiny_loras: dict[str, Path]
) -> None:
    out = run_cli(
        "--set",
        f"model.base_model={tiny_model}",
        "serve",
        "--lora",
        f"a={tiny_loras['a']}",
        "--port",
        "8123",
        "--dry-run",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    cmd = out.stdout.strip()
    assert "vllm.entrypoints.openai.api_server" in cmd and "--enable-lora" in cmd
    assert f"a={tiny_loras['a']}" in cmd and "--port 8123" in cmd and "--host 127.0.0.1" in cmd


def test_adapter_by_registry_name_or_folder_without_lora(
    tmp_path: Path, tiny_model: Path, tiny_loras: dict[str, Path]
) -> None:
    """README: ``xiaoshuo inference --adapter style`` uses the trained adapter ``style`` (or a folder)."""
    import shutil

    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(tiny_loras["a"], checkpoints / "style" / "final_model")
    base = [
        "--set",
        f"model.base_model={tiny_model}",
        "--set",
        "model.dtype=float32",
        "--set",
        f"paths.checkpoints_dir={checkpoints}",
    ]
    greedy = [
        "--backend",
        "transformers",
        "--prompt",
        "雨夜",
        "--raw",
        "--max-tokens",
        "8",
        "-t",
        "0",
        "--json",
    ]

    def text(*flags: str) -> str:
        out = run_cli(*base, "inference", *greedy, *flags, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.splitlines()[-1])["text"]

    by_name = text("--adapter", "style")
    assert by_name == text("--lora", f"style={tiny_loras['a']}")
    assert by_name != text("--adapter", "none")
    assert text("--adapter", str(tiny_loras["b"])) == text("--lora", f"b={tiny_loras['b']}")


def test_unknown_adapter_names_the_trained_ones(tmp_path: Path, tiny_loras: dict[str, Path]) -> None:
    import shutil

    shutil.copytree(tiny_loras["a"], tmp_path / "checkpoints" / "style" / "final_model")
    (tmp_path / "checkpoints" / "style" / "final_model" / "xiaoshuo_manifest.json").write_text("{}", "utf-8")
    out = run_cli(
        "--set",
        "model.base_model=/nonexistent/model",
        "--set",
        f"paths.checkpoints_dir={tmp_path / 'checkpoints'}",
        "inference",
        "--prompt",
        "x",
        "--adapter",
        "styel",
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert "unknown adapter" in out.stderr and "received: 'styel'" in out.stderr
    assert "a trained adapter (style)" in out.stderr
