"""The OpenAI backend against a real local vLLM server process (started like `xiaoshuo serve`)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from xiaoshuo.engine import EngineError, GenerationRequest, SamplingSettings, load_engine
from xiaoshuo.engine.openai_backend import serve_command
from xiaoshuo.testing import tiny_engine_settings

GREEDY = SamplingSettings(temperature=0.0, max_tokens=16, repetition_penalty=1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model: Path, tiny_loras: dict[str, Path], tmp_path_factory):
    work = tmp_path_factory.mktemp("server")
    port = _free_port()
    settings = tiny_engine_settings(tiny_model, work, **{"engine.enforce_eager": True})
    cmd = serve_command(settings, adapters={"a": str(tiny_loras["a"])}, port=port, served_name="tiny")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    log = (work / "server.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("vLLM server exited:\n" + (work / "server.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                break
        except OSError:
            time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("vLLM server did not start:\n" + (work / "server.log").read_text()[-3000:])
    yield settings, url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_openai_backend_streams_and_selects_lora_by_name(server, tiny_model: Path, tmp_path: Path) -> None:
    _, url = server
    settings = tiny_engine_settings(tiny_model, tmp_path, **{"engine.openai_base_url": url})
    with load_engine(settings, backend="openai") as eng:

        async def collect(req: GenerationRequest) -> list:
            return [d async for d in eng.stream(req)]

        base = asyncio.run(collect(GenerationRequest(prompt="林远站在雨中", sampling=GREEDY)))
        assert len([d for d in base if d.text]) > 1  # streamed in pieces
        assert base[-1].finish_reason in ("length", "stop")
        base_text = "".join(d.text for d in base)
        lora_text = eng.generate(GenerationRequest(prompt="林远站在雨中", sampling=GREEDY, lora="a")).text
        assert base_text and lora_text and lora_text != base_text
        chat = eng.generate(
            GenerationRequest(messages=[{"role": "user", "content": "续写"}], sampling=GREEDY)
        )
        assert chat.text and chat.candidates[0].finish_reason
        many = eng.generate(
            GenerationRequest(prompt="雨夜", sampling=SamplingSettings(n=2, max_tokens=8, seed=1))
        )
        assert [c.index for c in many.candidates] == [0, 1]


@pytest.mark.slow
def test_openai_backend_errors_are_clear(server, tiny_model: Path, tmp_path: Path) -> None:
    _, url = server
    settings = tiny_engine_settings(tiny_model, tmp_path, **{"engine.openai_base_url": url})
    with (
        load_engine(settings, backend="openai") as eng,
        pytest.raises(EngineError, match="adapter not served"),
    ):
        eng.generate(GenerationRequest(prompt="x", sampling=GREEDY, lora="nope"))
    dead = tiny_engine_settings(tiny_model, tmp_path, **{"engine.openai_base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(EngineError, match="server unreachable"):
        load_engine(dead, backend="openai")
