"""Bench: does the WebUI deliver the engine's speed?  Tokens/s and time to first token through the app.

The ~50M-parameter test model on vLLM behind the running app.  For 1 and 4 concurrent clients (the Gradio
client, over HTTP/SSE like a browser), the same seeded requests are run straight through ``Engine.stream``
and through the app's generate endpoint; the outputs are identical, so the rate ratio is the ratio of wall
times.  One JSON line; also bench/results/webui.json.  Goals: UI rate >= 0.95x engine; UI TTFT <= engine
TTFT + 150 ms.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import report

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
MAX_TOKENS = 256


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_round(services, n_clients: int) -> tuple[float, float, int]:
    from xiaoshuo.engine import SamplingSettings
    from xiaoshuo.webui.app import _compose

    engine = services.engine.get()

    async def one(i: int) -> tuple[float, int]:
        sampling = SamplingSettings(temperature=0.8, max_tokens=MAX_TOKENS, seed=i, repetition_penalty=1.05)
        req, _ = _compose(services, engine, "default", f"第{i}段：续写雨夜", "", sampling, False, "（无）")
        start, first, text = time.perf_counter(), None, ""
        async for d in engine.stream(req):
            if d.text and first is None:
                first = time.perf_counter() - start
            text += d.text
        return first or 0.0, len(text)

    async def run():
        start = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n_clients)))
        return (
            time.perf_counter() - start,
            statistics.median(r[0] for r in results),
            sum(r[1] for r in results),
        )

    return asyncio.run(run())


def ui_round(url: str, n_clients: int) -> tuple[float, float, int]:
    """The clients run in their own process, as a browser would, not competing for the app's GIL."""
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--client", url, str(n_clients)],
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def _clients(url: str, n_clients: int) -> tuple[float, float, int]:
    from gradio_client import Client

    results: list[tuple[float, int]] = [None] * n_clients  # type: ignore[list-item]
    clients = [Client(url, verbose=False) for _ in range(n_clients)]  # connected before the clock starts

    def one(i: int) -> None:
        client = clients[i]
        start, first, last = time.perf_counter(), None, ""
        job = client.submit(
            "default",
            f"第{i}段：续写雨夜",
            "",
            0.8,
            0.9,
            50,
            MAX_TOKENS,
            1.05,
            i,
            1,
            False,
            "（无）",
            api_name="/generate",
        )
        for out in job:
            if out[0] and first is None:
                first = time.perf_counter() - start
            last = out[0]
        results[i] = (first or 0.0, len(last))

    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, statistics.median(r[0] for r in results), sum(r[1] for r in results)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        import json

        print(json.dumps(_clients(sys.argv[2], int(sys.argv[3]))))
        return
    from xiaoshuo.testing import build_tiny_model, tiny_engine_settings
    from xiaoshuo.webui.launch import launch

    result: dict = {"bench": "webui", "max_tokens": MAX_TOKENS}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "bench", size="bench")
        port = _free_port()
        settings = tiny_engine_settings(
            model,
            tmp,
            **{
                "webui.port": port,
                "memory.embedding_model": "none",
                "model.dtype": "bfloat16",
                "model.vllm_max_model_len": 2048,
            },
        )
        demo, services = launch(settings, backend="vllm", block=False)
        services.engine.wait()
        url = f"http://127.0.0.1:{port}/"
        ui_round(url, 1)  # warm-up
        for n in (1, 4):
            e_wall, e_ttft, e_chars = engine_round(services, n)
            u_wall, u_ttft, u_chars = ui_round(url, n)
            result[f"c{n}"] = {
                "engine_s": round(e_wall, 3),
                "ui_s": round(u_wall, 3),
                "ui_rate_over_engine": round(e_wall / u_wall, 3),
                "engine_ttft_ms": round(e_ttft * 1000, 1),
                "ui_ttft_ms": round(u_ttft * 1000, 1),
                "same_output_length": e_chars == u_chars,
            }
        services.close()
        demo.close()
    report("webui", result)


if __name__ == "__main__":
    sys.exit(main())
