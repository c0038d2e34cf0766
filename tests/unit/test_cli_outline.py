"""``xiaoshuo outline generate --seed``: the same seed gives the same outline, and the page's 种子 agrees.

The engine is a scripted backend (registered like any backend) that draws its titles from the request's
seed, so what is checked is that the seed reaches every planning request with the planning defaults.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xiaoshuo import testing
from xiaoshuo.config import load
from xiaoshuo.engine import register_backend
from xiaoshuo.writing.structured import DEFAULT_SAMPLING

BACKEND = "scripted-seeded-outline"
SEEN: list = []


class SeededForms(testing.ScriptedEngine):
    backend = BACKEND

    def __init__(self) -> None:
        super().__init__(chunk=1 << 20)

    def respond(self, request) -> str:
        SEEN.append(request.sampling)
        rng = random.Random(request.sampling.seed)
        count = request.json_schema["properties"]["chapters"]["minItems"]
        chapters = [
            {"title": "".join(rng.choice("甲乙丙丁戊己庚辛壬癸") for _ in range(6)), "synopsis": "要点"}
            | {"characters": [], "places": []}
            for _ in range(count)
        ]
        return json.dumps({"volume": "第一卷", "chapters": chapters}, ensure_ascii=False)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch):
    from xiaoshuo.cli import app

    register_backend(BACKEND, lambda cfg, model, adapters: SeededForms())
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    runner = CliRunner()

    def run(*args: str) -> str:
        res = runner.invoke(app, list(args))
        assert res.exit_code == 0, res.output
        return res.stdout

    return run


def _outline(cli, slug: str, *extra: str) -> list[str]:
    cli("novel", "new", slug, "--title", slug)
    SEEN.clear()
    plan = ("outline", "generate", "--novel", slug, "--chapters", "4", "--no-memory")
    cli(*plan, "--backend", BACKEND, *extra)
    assert len(SEEN) == 1 and SEEN[0].temperature == DEFAULT_SAMPLING.temperature
    shown = json.loads(cli("outline", "show", "--novel", slug, "--json"))
    return [c["title"] for v in shown["volumes"] for c in v["chapters"]]


def test_outline_generate_seed_repeats_the_outline(cli, tmp_path: Path) -> None:
    first = _outline(cli, "a", "--seed", "7")
    assert SEEN[0].seed == 7
    assert _outline(cli, "b", "--seed", "7") == first and len(first) == 4
    assert _outline(cli, "c", "--seed", "8") != first
    assert _outline(cli, "d") != first  # no seed: a random one


def test_the_page_and_the_cli_plan_the_same_outline_from_one_seed(cli, tmp_path: Path) -> None:
    from xiaoshuo.webui.pages.book import handlers as h
    from xiaoshuo.webui.services import Services

    from_cli = _outline(cli, "a", "--seed", "42")

    class Holder:
        model, backend, lora = "scripted", BACKEND, {}

        def loading(self) -> bool:
            return False

        def get(self):
            return SeededForms()

    settings = load(None, cwd=tmp_path, env={}, overrides={"memory.embedding_model": "none"})
    services = Services(settings, engine=Holder())
    try:
        h.create_novel(services, "page", "page")
        asyncio.run(h.generate_outline(services, "page", 4, seed=42))
        assert [r[2] for r in h.outline_rows(services, "page")] == from_cli
    finally:
        services.close_store()


def test_the_seed_option_is_documented(cli) -> None:
    assert "--seed" in cli("outline", "generate", "--help")


def test_outline_show_names_the_status_in_chinese(cli) -> None:
    _outline(cli, "e", "--seed", "3")
    shown = cli("outline", "show", "--novel", "e")
    assert "[未写 planned]" in shown and "[planned]" not in shown
