"""The real WebUI with ``--auth`` over HTTP: every route but the login page needs the login, failed logins
are rate limited per client, and after login the page and its queue work — an export of a book with a
100-汉字 title and a training upload with a 70-emoji file name go through the app and come back.

One app (no model on disk: the engine fails fast, nothing here needs it) serves the whole module.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from xiaoshuo import config
from xiaoshuo.testing import free_port

USER, PASSWORD = "writer", "s3cret-雨夜"
LONG_TITLE = "雨" * 100  # 300 bytes of UTF-8: longer than a file name may be
EMOJI_NAME = "🌧" * 70 + ".txt"  # 284 bytes




@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from xiaoshuo.webui.launch import launch
    from xiaoshuo.writing import Novels

    tmp = tmp_path_factory.mktemp("webui-auth")
    port = free_port()
    settings = config.load(
        env={},
        cwd=tmp,
        overrides={
            "webui.port": port,
            "model.base_model": "org/not-downloaded",
            "memory.embedding_model": "none",
            "paths.data_dir": str(tmp / "data"),
            "paths.models_dir": str(tmp / "models"),
            "paths.checkpoints_dir": str(tmp / "checkpoints"),
            "paths.logs_dir": str(tmp / "logs"),
        },
    )
    novel = Novels.from_settings(settings).create("longtitle", title=LONG_TITLE)
    novel.set_text(1, "夜雨敲窗。")
    demo, services = launch(settings, backend="transformers", block=False, auth=[(USER, PASSWORD)])
    try:
        yield {"base": f"http://127.0.0.1:{port}", "demo": demo, "settings": settings}
    finally:
        services.close()
        demo.close()


def _login(base: str, client: httpx.Client) -> httpx.Response:
    return client.post(f"{base}/login", data={"username": USER, "password": PASSWORD})


def test_without_login_only_the_login_page_answers(app) -> None:
    base = app["base"]
    with httpx.Client(timeout=30) as anon:
        for path in (
            "/openapi.json",
            "/docs",
            "/gradio_api/token",
            "/gradio_api/user",
            "/gradio_api/app_id",
            "/gradio_api/runs",
            "/gradio_api/info",
            "/config",
        ):
            r = anon.get(base + path)
            assert r.status_code == 401, (path, r.status_code, r.text[:200])
            assert r.json()["detail"]["error"] == "Not authenticated"
        r = anon.post(f"{base}/gradio_api/cancel", json={"session_hash": "x", "fn_index": 0, "event_id": "y"})
        assert r.status_code == 401
        page = anon.get(base + "/")
        assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
        # the login page used to carry the API description, the novel list among a parameter's choices
        assert '"/generate"' not in page.text and "longtitle" not in page.text
        assert 'window.gradio_api_info = {"named_endpoints":{},"unnamed_endpoints":{}};' in page.text
        assert int(page.headers["content-length"]) == len(page.content)
        for asset in ("/theme.css", "/favicon.ico"):
            assert anon.get(base + asset).status_code in (200, 404)  # served, not refused


def test_failed_logins_are_rate_limited_per_client(app) -> None:
    base = app["base"]
    # another loopback address is another client: this test's lock leaves 127.0.0.1 free
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30)
    with other:
        codes = [
            other.post(f"{base}/login", data={"username": USER, "password": f"wrong{i}"}).status_code
            for i in range(8)
        ]
        assert codes[:5] == [400] * 5 and codes[5:] == [429] * 3, codes
        refused = other.post(f"{base}/login", data={"username": USER, "password": PASSWORD})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "秒后再试" in refused.json()["detail"]
        assert not other.cookies
    with httpx.Client(timeout=30) as mine:
        assert _login(base, mine).status_code == 200


def _dependency(cfg: dict, elem_id: str, event: str) -> dict:
    ids = {c["id"] for c in cfg["components"] if c.get("props", {}).get("elem_id") == elem_id}
    return next(d for d in cfg["dependencies"] if any(t[0] in ids and t[1] == event for t in d["targets"]))


def _load_dependency(cfg: dict, elem_id: str) -> dict:
    (target,) = [c["id"] for c in cfg["components"] if c.get("props", {}).get("elem_id") == elem_id]
    return next(d for d in cfg["dependencies"] if target in d["outputs"] and d["targets"][0][1] == "load")


def _run(client: httpx.Client, base: str, dep: dict, data: list, session: str) -> list:
    """One event through the page's own queue route (``queue/join`` + the ``queue/data`` stream)."""
    join = client.post(
        f"{base}/gradio_api/queue/join",
        json={
            "data": data,
            "fn_index": dep["id"],
            "trigger_id": dep["targets"][0][0],
            "session_hash": session,
            "event_data": None,
        },
    )
    assert join.status_code == 200, join.text
    deadline = time.monotonic() + 120
    with client.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            assert time.monotonic() < deadline, "no answer from the queue in 120 s"
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "process_completed":
                assert msg.get("success"), msg
                return msg["output"]["data"]
    pytest.fail("the queue stream ended without a result")


def test_after_login_the_page_and_its_queue_work(app) -> None:
    base = app["base"]
    with httpx.Client(timeout=60) as me:
        assert _login(base, me).status_code == 200
        assert me.get(f"{base}/gradio_api/user").json() == USER
        assert me.get(f"{base}/gradio_api/app_id").status_code == 200
        page = me.get(base + "/")
        assert page.status_code == 200 and "named_endpoints" in page.text  # the full page, once logged in
        cfg = me.get(f"{base}/config").json()
        assert cfg["components"] and not cfg.get("auth_required")

        # the page's load, as the browser runs it: the book picker learns the novels on disk
        session = uuid.uuid4().hex
        _run(me, base, _load_dependency(cfg, "book-novel"), [{"novel": None, "chapter": None}], session)
        # 导出 of a book titled with 100 汉字: a download named after the title, shortened, whole characters
        export = _dependency(cfg, "book-export-go", "click")
        exported = _run(me, base, export, ["longtitle", "txt", ""], session)
        name = exported[0]["orig_name"]
        assert name.endswith(".txt") and name.startswith("雨" * 10) and len(name.encode()) <= 150
        got = me.get(exported[0]["url"])
        assert got.status_code == 200 and "夜雨敲窗" in got.content.decode("utf-8")


def test_a_training_upload_named_with_70_emoji_is_stored_under_a_shorter_name(app) -> None:
    base = app["base"]
    with httpx.Client(timeout=60) as me:
        assert _login(base, me).status_code == 200
        cfg = me.get(f"{base}/config").json()
        session = uuid.uuid4().hex
        text = "第一章 雨\n夜雨敲窗。\n".encode()
        up = me.post(f"{base}/gradio_api/upload", files={"files": (EMOJI_NAME, text)})
        assert up.status_code == 200, up.text
        (path,) = up.json()
        files = [{"path": path, "orig_name": EMOJI_NAME, "meta": {"_type": "gradio.FileData"}}]
        dep = _dependency(cfg, "train-upload", "upload")
        # the upload also re-estimates the training time: the form's values as the page would send them
        values = {c["id"]: c.get("props", {}).get("value") for c in cfg["components"]}
        message, *_ = _run(me, base, dep, [files, *(values.get(i) for i in dep["inputs"][1:])], session)
        raw = sorted(Path(app["settings"].paths.raw_dir).iterdir())
        assert len(raw) == 1 and raw[0].suffix == ".txt" and raw[0].name.startswith("🌧" * 10), raw
        assert len(raw[0].name.encode()) <= 150 and raw[0].read_text("utf-8").startswith("第一章")
        assert raw[0].name in message


def test_gradio_copies_of_downloads_are_deleted_after_a_while(app) -> None:
    from xiaoshuo.webui.files import GRADIO_DELETE_CACHE

    assert app["demo"].delete_cache == GRADIO_DELETE_CACHE
