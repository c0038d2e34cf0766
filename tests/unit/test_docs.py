"""The README and config.example.toml stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

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
