"""WebUI building blocks without a browser: 随手写's scratch store, exposure rules, auth parsing,
training commands, uploads."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.testing import run_cli
from xiaoshuo.webui.launch import check_exposure, read_auth
from xiaoshuo.webui.locale import STRINGS, t
from xiaoshuo.webui.services import TrainingJobs, safe_upload_name, save_uploads
from xiaoshuo.writing.scratch import Scratch


def test_stories_autosave_per_novel_and_default_adapter(tmp_path: Path) -> None:
    stories = Scratch(tmp_path / "stories")
    stories.save("雨夜剑", "第一章 雨夜\n夜色如墨。")
    stories.save("归途", "末班车")
    reopened = Scratch(tmp_path / "stories")
    assert reopened.load("雨夜剑") == "第一章 雨夜\n夜色如墨。" and reopened.load("归途") == "末班车"
    assert reopened.load("没有写过") == ""
    assert reopened.names() == sorted(["雨夜剑", "归途"])
    reopened.set_adapter("雨夜剑", "wuxia-v1")
    assert Scratch(tmp_path / "stories").adapter("雨夜剑") == "wuxia-v1"
    assert not list((tmp_path / "stories").glob(".*tmp*"))  # atomic writes leave no temp files


def test_a_much_shorter_save_keeps_the_previous_text_as_a_version(tmp_path: Path) -> None:
    stories = Scratch(tmp_path / "stories")
    accepted = "第一章 雨夜\n" + "夜色如墨，林远撑伞走过长街。" * 80  # ~1,100 chars (the bug report)
    stories.save("雨夜剑", accepted)
    stories.save("雨夜剑", accepted + "他")  # typing: no version
    stories.save("雨夜剑", accepted)  # deleting one character: no version
    assert stories.versions("雨夜剑") == []
    stories.save("雨夜剑", "x")  # a reloaded empty page + one keystroke
    assert stories.load("雨夜剑") == "x"
    [version] = stories.versions("雨夜剑")
    assert version.read_text("utf-8") == accepted
    stories.KEEP_VERSIONS = 3
    for i in range(5):
        stories.save("雨夜剑", accepted + str(i))
        stories.save("雨夜剑", "")
    kept = stories.versions("雨夜剑")
    assert [v.read_text("utf-8") for v in kept] == [accepted + str(i) for i in (2, 3, 4)]


def test_concurrent_saves_lose_no_novel_and_no_adapter(tmp_path: Path) -> None:
    stories = Scratch(tmp_path / "stories")
    names = [f"小说{i}" for i in range(24)]
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            for step in range(5):
                stories.save(name, f"{name} 第{step}段")
                stories.set_adapter(name, f"adapter-{name}")
        except BaseException as exc:  # surfaced below: a thread's exception must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(thread.is_alive() for thread in threads)
    reopened = Scratch(tmp_path / "stories")
    assert reopened.names() == sorted(names)
    assert all(reopened.adapter(name) == f"adapter-{name}" for name in names)
    assert all(reopened.load(name) == f"{name} 第4段" for name in names)


def test_a_corrupt_story_index_is_a_clear_error(tmp_path: Path) -> None:
    stories = Scratch(tmp_path / "stories")
    stories.save("a", "text")
    (tmp_path / "stories" / "index.json").write_text("{broken", "utf-8")
    with pytest.raises(XiaoshuoError, match="corrupt scratch index"):
        stories.save("b", "more")
    assert stories.load("a") == "text"


@pytest.mark.parametrize(
    ("host", "share", "auth", "insecure", "ok"),
    [
        ("127.0.0.1", False, [], False, True),
        ("localhost", False, [], False, True),
        ("0.0.0.0", False, [], False, False),
        ("192.168.1.5", False, [], False, False),
        ("0.0.0.0", False, [("a", "b")], False, True),
        ("127.0.0.1", True, [], False, False),
        ("0.0.0.0", True, [], True, True),
    ],
)
def test_exposure_rules(host, share, auth, insecure, ok) -> None:
    if ok:
        check_exposure(host, share, auth, insecure)
    else:
        with pytest.raises(XiaoshuoError, match="--auth"):
            check_exposure(host, share, auth, insecure)


def test_auth_parsing(tmp_path: Path) -> None:
    f = tmp_path / "users.txt"
    f.write_text("alice:one\n\nbob:two:three\n", "utf-8")
    assert read_auth("me:pw", f) == [("me", "pw"), ("alice", "one"), ("bob", "two:three")]
    with pytest.raises(XiaoshuoError, match="USER:PASS"):
        read_auth("nopassword", None)


def test_training_command_matches_the_cli(tmp_path: Path) -> None:
    settings = config.load(env={}, cwd=tmp_path, overrides={"paths.data_dir": str(tmp_path / "d")})
    cmd = TrainingJobs(settings, None).command(
        {
            "base_model": "m",
            "run": "r1",
            "epochs": 2,
            "batch_size": 1,
            "grad_accum": 4,
            "lr": 1e-4,
            "lora_r": 16,
            "max_seq_length": 1024,
            "max_steps": None,
            "qlora": True,
        }
    )
    assert cmd[1:3] == ["-m", "xiaoshuo"] and "train" in cmd
    for flag, value in (("--epochs", "2"), ("--grad-accum", "4"), ("--lora-r", "16"), ("--run", "r1")):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--qlora" in cmd


def test_locale_has_both_languages() -> None:
    assert all("zh" in v and "en" in v for v in STRINGS.values())
    assert t("tab_create") == "创作" and t("tab_create", "en") == "创作"  # tab labels are stable ids
    assert t("generate", "en") == "Generate"


def test_refuses_public_host_without_auth(tmp_path: Path) -> None:
    out = run_cli("webui", "--host", "0.0.0.0", cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "--auth" in out.stderr and "Traceback" not in out.stderr
    share = run_cli("webui", "--share", cwd=tmp_path, timeout=60)
    assert share.returncode == 2 and "share" in share.stderr


def test_upload_names_are_sanitised(tmp_path: Path) -> None:
    assert safe_upload_name("../../etc/passwd.txt") == "passwd.txt"
    assert safe_upload_name("..\\..\\x.txt") == "x.txt"
    src = tmp_path / "in.txt"
    src.write_text("第一章\n正文", "utf-8")
    raw = tmp_path / "raw"
    messages = save_uploads([str(src)], raw)
    assert messages[0].startswith("✓") and (raw / "in.txt").exists()
    assert not any(p for p in tmp_path.iterdir() if p.name not in {"in.txt", "raw"})
    assert os.listdir(raw) == ["in.txt"]
    bad = tmp_path / "evil.exe"
    bad.write_bytes(b"MZ")
    assert save_uploads([str(bad)], raw)[0].startswith("✗") and os.listdir(raw) == ["in.txt"]
