"""``memory search`` / ``memory context`` say on stderr when memory is degraded (``retrieve().warnings``).

Real Chroma: a novel indexed without an embedding model ("none"), then searched with a model configured,
degrades to triggers + BM25 (the index was built with another model) — the commands still answer on
stdout, and the reason goes to stderr, also with ``--json`` (stdout stays parseable).
"""

from __future__ import annotations

import json
from pathlib import Path

from xiaoshuo.testing import run_cli


def test_search_and_context_print_degraded_memory_warnings_to_stderr(tmp_path: Path):
    base = {"XIAOSHUO_PATHS__DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    plain = {**base, "XIAOSHUO_MEMORY__EMBEDDING_MODEL": "none"}
    dense = {**base, "XIAOSHUO_MEMORY__EMBEDDING_MODEL": str(tmp_path / "models" / "bge-small-zh")}

    def cli(env, *args):
        out = run_cli(*args, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        return out

    cli(plain, "memory", "add", "--novel", "yuye", "--kind", "character", "--name", "林远", "--text", "少年")
    clean = cli(plain, "memory", "search", "林远", "--novel", "yuye")
    assert "林远" in clean.stdout and "⚠" not in clean.stderr  # not degraded: nothing said

    found = cli(dense, "memory", "search", "林远", "--novel", "yuye", "--json")
    assert [r["name"] for r in json.loads(found.stdout)] == ["林远"]
    assert "⚠" in found.stderr and "reindex" in found.stderr
    assert found.stderr.count("triggers + BM25") == 1  # said once (not also as a log line)

    context = cli(dense, "memory", "context", "林远", "--novel", "yuye", "--tokenizer", "builtin-tiny")
    assert "林远" in context.stdout and "triggers + BM25" not in context.stdout
    assert "⚠" in context.stderr and context.stderr.count("triggers + BM25") == 1
