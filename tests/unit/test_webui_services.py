"""WebUI building blocks without a browser: stories, exposure rules, auth parsing, training commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.launch import check_exposure, read_auth
from xiaoshuo.webui.locale import STRINGS, t
from xiaoshuo.webui.services import Stories, TrainingJobs


def test_stories_autosave_per_novel_and_default_adapter(tmp_path: Path) -> None:
    stories = Stories(tmp_path / "stories")
    stories.save("雨夜剑", "第一章 雨夜\n夜色如墨。")
    stories.save("归途", "末班车")
    reopened = Stories(tmp_path / "stories")
    assert reopened.load("雨夜剑") == "第一章 雨夜\n夜色如墨。" and reopened.load("归途") == "末班车"
    assert reopened.load("没有写过") == ""
    assert reopened.novels() == sorted(["雨夜剑", "归途"])
    reopened.set_adapter("雨夜剑", "wuxia-v1")
    assert Stories(tmp_path / "stories").adapter("雨夜剑") == "wuxia-v1"
    assert not list((tmp_path / "stories").glob(".*tmp*"))  # atomic writes leave no temp files


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
