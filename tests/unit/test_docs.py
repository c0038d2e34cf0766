"""The README and config.example.toml stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xiaoshuo import config

REPO = Path(__file__).resolve().parents[2]


def test_readme_documents_every_config_key_and_command() -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    for section, fields in config.all_keys().items():
        for name in fields:
            assert f"`{section}.{name}`" in readme, f"{section}.{name} missing from README"
    for command in (
        "xiaoshuo config",
        "xiaoshuo doctor",
        "xiaoshuo prepare",
        "xiaoshuo inference",
        "xiaoshuo serve",
        "xiaoshuo train",
        "xiaoshuo adapters",
        "make test",
        "make doctor",
    ):
        assert command in readme


def test_example_config_uncommented_loads_to_the_defaults(tmp_path: Path) -> None:
    text = (REPO / "config.example.toml").read_text("utf-8")
    uncommented = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)
    (tmp_path / "config.toml").write_text(uncommented, "utf-8")
    loaded = config.load(env={}, cwd=tmp_path)
    defaults = config.load(env={}, cwd=tmp_path / "nowhere")
    for key, value, source, _ in loaded.items():
        if key == "engine.system_prompt":
            continue
        assert source.startswith("config.toml"), key
        assert value == defaults.get(key), key


# --- Every `xiaoshuo …` example in the README runs, or says here why it cannot ---------------------------
# Examples run in README order in one temp folder, offline: the memory has no embedding model
# (memory.embedding_model = "none", dense retrieval off), tokens are counted with the built-in tiny tokenizer
# (data.tokenizer = "builtin-tiny"), data/raw holds the sample corpus ("put your novels in data/raw") and
# ~/novels (HOME is a temp folder) a copy of it.  `[--opt]` runs with the option; `a | b | c` runs each
# alternative with the group prefix of the first (`xiaoshuo memory show ID | edit ID` → `… memory show ID`,
# `… memory edit ID`); ID is the first entry that `memory add` printed.
NOT_RUN = {
    "xiaoshuo doctor --smoke": "starts vLLM on a built model: tests/integration/test_doctor_smoke.py",
    "xiaoshuo prepare --tokenizer ./models/Qwen2.5-7B-Instruct": "needs the Qwen2.5-7B tokenizer on disk",
    "xiaoshuo inference": "loads a real base model (a download); the same flags run on the tiny model in "
    "tests/integration/test_cli_inference.py",
    "python start.py inference": "loads a real base model; the entry point: tests/unit/test_cli.py",
    "xiaoshuo serve --lora": "starts a vLLM server with a trained adapter (runs until stopped)",
    "xiaoshuo --set engine.backend=openai inference": "needs the server of the line above",
    "xiaoshuo train": "trains a real base model for minutes to hours: tests/integration/test_training.py "
    "runs these flags on the tiny model",
    "python start.py train": "trains a real base model (see tests/integration/test_training.py)",
    "xiaoshuo adapters show wuxia-v1": "needs a trained adapter: tests/integration/test_training.py",
    "xiaoshuo adapters merge wuxia-v1": "needs a trained adapter and its base model",
    "xiaoshuo adapters rm wuxia-v1": "needs a trained adapter: tests/integration/test_training.py",
    "xiaoshuo adapters export": "needs a trained adapter and llama.cpp (test_gguf_export.py)",
    "xiaoshuo memory add --kind plot --text … && xiaoshuo memory search …": "needs the Chroma server "
    "started just above it (tests/integration/test_memory_server.py)",
    "xiaoshuo model pull": "downloads from a hub: tests/integration/test_model_pull.py runs it against a hub "
    "served locally, through both real clients (huggingface_hub, modelscope)",
    "xiaoshuo model rm": "needs a pulled model: tests/unit/test_models.py::test_remove_a_pulled_model",
    "xiaoshuo webui": "starts a web server that runs until stopped: tests/e2e/test_webui.py, "
    "tests/unit/test_cli.py::test_webui_options_reach_launch",
    "python start.py webui": "starts a web server that runs until stopped (tests/e2e/test_webui.py)",
    "xiaoshuo outline import outline.json": "needs the outline file its comment shows: "
    "tests/integration/test_writing_vllm.py::test_a_whole_novel_through_the_cli imports one",
    "xiaoshuo novel import 我的小说.txt": "the reader's own file, and --extract loads a real base model; "
    "import runs on the sample corpus in the lines around it and in tests/unit/test_books.py",
    "xiaoshuo write": "generates with a real base model; the same commands run on the tiny model in "
    "tests/integration/test_writing_vllm.py",
    "xiaoshuo chapter": "needs written chapters and a text file; test_a_whole_novel_through_the_cli runs "
    "show/versions/diff/set/revert/accept on the tiny model",
    "xiaoshuo outline generate": "loads a model: tests/integration/test_planning_engines.py runs it "
    "(tiny model, 60 chapters, kill -9, --resume)",
    "xiaoshuo memory extract": "loads a model: tests/integration/test_extraction.py runs it (tiny model)",
    "xiaoshuo memory review approve": "needs a proposal id: tests/integration/test_extraction.py",
    "xiaoshuo memory review reject": "needs a proposal id: tests/integration/test_extraction.py",
    "xiaoshuo check chapter": "needs written chapters: tests/unit/test_consistency.py, "
    "tests/integration/test_extraction.py",
    "xiaoshuo eval style": "loads a model and an adapter: tests/integration/test_eval_style_training.py "
    "trains the tiny model and measures it; tests/unit/test_eval_style.py runs it on a scripted engine",
}


def readme_cli_examples() -> list[tuple[dict[str, str], list[str]]]:
    """``(env, tokens)`` of every ``xiaoshuo``/``python start.py`` line in the README's bash blocks."""
    import shlex

    text = (REPO / "README.md").read_text("utf-8")
    examples = []
    for block in re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", text, flags=re.MULTILINE | re.DOTALL):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            tokens = shlex.split(line, comments=True)
            env = {}
            while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
                key, _, value = tokens.pop(0).partition("=")
                env[key] = value
            if tokens[:1] == ["xiaoshuo"] or tokens[:2] == ["python", "start.py"]:
                examples.append((env, tokens))
    return examples


def _why_not_run(tokens: list[str]) -> str | None:
    line = " ".join(tokens)
    return next((why for prefix, why in NOT_RUN.items() if line.startswith(prefix)), None)


def _commands(tokens: list[str]) -> list[list[str]]:
    """Optional parts in; ``a | b`` alternatives apart, each with the first's ``xiaoshuo group`` prefix."""
    tokens = [t.removeprefix("[").removesuffix("]") for t in tokens]
    parts: list[list[str]] = [[]]
    for t in tokens:
        if t == "|":
            parts.append([])
        else:
            parts[-1].append(t)
    prefix = parts[0][: parts[0].index("xiaoshuo") + 2] if "xiaoshuo" in parts[0] else parts[0][:3]
    return [parts[0], *(prefix + p for p in parts[1:])]


def test_readme_cli_examples_are_all_classified() -> None:
    examples = readme_cli_examples()
    lines = [" ".join(tokens) for _, tokens in examples]
    assert len(examples) > 30 and any(line.startswith("xiaoshuo memory search") for line in lines)
    for prefix in NOT_RUN:
        assert any(line.startswith(prefix) for line in lines), (
            f"NOT_RUN entry matches no README example: {prefix}"
        )


@pytest.mark.slow
def test_readme_cli_examples_run(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from xiaoshuo.data import write_sample_corpus

    work, home = tmp_path / "work", tmp_path / "home"
    write_sample_corpus(work / "data" / "raw")
    write_sample_corpus(home / "novels")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}
    env.update(
        HOME=str(home),
        COLUMNS="100",
        XIAOSHUO_MEMORY__EMBEDDING_MODEL="none",
        XIAOSHUO_DATA__TOKENIZER="builtin-tiny",
    )
    ids: list[str] = []
    ran: dict[str, str] = {}
    for extra_env, tokens in readme_cli_examples():
        if _why_not_run(tokens):
            continue
        for cmd in _commands(tokens):
            cmd = [ids[0] if t == "ID" and ids else t for t in cmd]
            cmd = [str(home) + t[1:] if t.startswith("~/") else t for t in cmd]  # as the shell expands ~
            argv = cmd[2:] if cmd[0] == "python" else cmd[1:]
            entry = [str(REPO / "start.py")] if cmd[0] == "python" else ["-m", "xiaoshuo"]
            out = subprocess.run(
                [sys.executable, *entry, *argv],
                cwd=work,
                env={**env, **extra_env},
                capture_output=True,
                text=True,
                timeout=300,
            )
            line = " ".join(cmd)
            assert out.returncode == 0, f"README example failed: {line}\n{out.stderr[-3000:]}"
            ran[line] = out.stdout
            if cmd[1:3] == ["memory", "add"]:
                ids.append(out.stdout.split()[-1])
    wanted = "xiaoshuo memory search 阿远回到青云山 --novel yuye"  # every entry above went to yuye
    search = next(out for line, out in ran.items() if line.startswith(wanted))
    assert {"林远", "青云山"} <= {hit["name"] for hit in json.loads(search)}
    context = next(out for line, out in ran.items() if line.startswith("xiaoshuo memory context"))
    assert "林远" in json.loads(context)["text"]
    assert (
        work / "work" / "prepared" / "manifest.json"
    ).is_file()  # prepare --input ~/novels --output ./work
    assert any(line.startswith("xiaoshuo memory import") for line in ran)
