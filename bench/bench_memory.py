"""Bench: story-memory retrieval latency, insert throughput, size on disk and recall.

Stores of 1k, 10k and 100k generated entries (characters with aliases, places,
plot events, dialogues) in one novel; 100 queries each.  One JSON line with p50/p95
of (a) a bare Chroma query with no filter (384-d precomputed random vectors: embedding
100k texts on 2 cores is too slow) and (b) our full hybrid retrieval + context build
(dense off — ``memory.embedding_model = "none"`` — so it rests on triggers + BM25),
insert throughput, size on disk, and recall@5 on labelled queries (an alias, or an
event's place + action).  Also the first query of a *fresh process* (open the store, one
search): with the index saved beside the store (``first_query_fresh_s``) and with that file
removed, so the process rebuilds it from Chroma (``first_query_rebuild_s``), and the saved
file's size.  Usage: python bench/bench_memory.py [SIZES…]
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

SURNAMES = (
    "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜谢邹喻柏水窦章云"
    "苏潘葛范彭郎鲁韦昌马苗凤花方俞任袁柳鲍史唐费薛雷贺倪汤殷罗毕郝邬安常乐于傅皮卞齐"
    "康伍余顾孟黄"
)
GIVEN = (
    "远晴山川风云雪月星辰明华清婉若兰竹松柏青白玄羽灵霜寒秋春夏冬江河湖海天地玉珠金银"
    "锦绣文武德仁义礼智信忠孝安宁"
)
PLACES = ["城", "山", "谷", "镇", "村", "湖", "岛", "关", "寺", "阁"]
EVENTS = ["遇伏", "结盟", "决裂", "比剑", "盗宝", "救人", "夜宴", "出走", "拜师", "复仇", "失踪", "重逢"]


def generate(n: int, seed: int = 0):
    from xiaoshuo.memory import make_entry

    rng = random.Random(seed)
    used: set[str] = set()

    def unique(maker) -> str:
        while True:
            name = maker()
            if name not in used and not any(name in u or u in name for u in ()):
                used.add(name)
                return name

    entries, labels = [], []
    n_char, n_place = int(n * 0.3), int(n * 0.1)
    chars, places = [], []
    for _ in range(n_char):
        name = unique(
            lambda: rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 3))))
        )
        alias = unique(lambda: "阿" + "".join(rng.choice(GIVEN) for _ in range(3)))
        e = make_entry(
            kind="character", name=name, aliases=[alias], text=f"{name}性情{rng.choice(GIVEN)}，擅长剑法。"
        )
        entries.append(e)
        chars.append(e)
        if len(labels) < 50:
            labels.append((f"{alias}此刻在做什么", e.id))
    for _ in range(n_place):
        name = unique(lambda: "".join(rng.choice(GIVEN) for _ in range(3)) + rng.choice(PLACES))
        e = make_entry(kind="setting", name=name, text=f"{name}地势险要，常年{rng.choice(GIVEN)}。")
        entries.append(e)
        places.append(e)
    plot_labels = []
    while len(entries) < n:
        c, p, ev = rng.choice(chars), rng.choice(places), rng.choice(EVENTS)
        if rng.random() < 0.66:
            e = make_entry(
                kind="plot",
                text=f"{c.name}在{p.name}{ev}。",
                characters=[c.name],
                chapter=rng.randrange(1, 500),
            )
            if len(plot_labels) < 50:
                plot_labels.append((f"还记得{p.name}{ev}的那件事吗", e.id))
        else:
            e = make_entry(kind="dialogue", characters=[c.name], text=f"“{p.name}的事，我不会忘。”")
        entries.append(e)
    return entries, labels + plot_labels


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


FRESH = """
import sys, time
t0 = time.perf_counter()
from xiaoshuo import config
from xiaoshuo.memory import MemoryStore, search
settings = config.load(env={}, cwd=sys.argv[1], overrides={"paths.data_dir": sys.argv[2],
    "memory.embedding_model": "none", "memory.max_memory_items": int(sys.argv[3])})
t1 = time.perf_counter()
with MemoryStore(settings) as store:
    hits = search(store, "default", sys.argv[4])
    t2 = time.perf_counter()
print(round(t2 - t1, 3), round(t1 - t0, 3), len(hits))
"""


def fresh_process(tmp: Path, data: Path, size: int, query: str) -> float:
    """Seconds from opening the store to the first search's answer in a new interpreter."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", FRESH, str(tmp), str(data), str(size * 2), query],
        capture_output=True, text=True, env=env, check=True, timeout=3600,
    ).stdout.split()  # fmt: skip
    return float(out[0])


def run(size: int, tmp: Path, counter) -> dict:
    import chromadb
    import numpy as np

    from xiaoshuo import config
    from xiaoshuo.memory import MemoryStore, build_context, search

    entries, labels = generate(size)
    settings = config.load(
        env={},
        cwd=tmp,
        overrides={
            "paths.data_dir": str(tmp / f"data{size}"),
            "memory.embedding_model": "none",
            "memory.max_memory_items": size * 2,
        },
    )
    with MemoryStore(settings) as store:
        start = time.perf_counter()
        store.add(entries)
        insert_s = time.perf_counter() - start
        start = time.perf_counter()
        search(store, "default", "预热")  # builds the BM25 + trigger index
        index_s = time.perf_counter() - start
        queries = [q for q, _ in labels] * 2
        ours, hits_at_5 = [], 0
        for q, target in labels:
            found = [h.entry.id for h in search(store, "default", q)][:5]
            hits_at_5 += target in found
        for q in queries[:100]:
            t = time.perf_counter()
            build_context(search(store, "default", q), 1024, counter)
            ours.append((time.perf_counter() - t) * 1000)
    disk = _dir_size(tmp / f"data{size}")
    index_files = list((tmp / f"data{size}").rglob("index/*.npz"))
    index_mb = sum(p.stat().st_size for p in index_files) / 1e6
    fresh = fresh_process(tmp, tmp / f"data{size}", size, labels[-1][0])
    for p in index_files:
        p.unlink()
    rebuild = fresh_process(tmp, tmp / f"data{size}", size, labels[-1][0])
    # (a) bare Chroma: same count, 384-d vectors, no filter
    rng = np.random.default_rng(0)
    client = chromadb.PersistentClient(path=str(tmp / f"raw{size}"))
    col = client.create_collection("raw", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    vecs = rng.standard_normal((size, 384)).astype("float32")
    step = client.get_max_batch_size() - 1
    for i in range(0, size, step):
        col.add(ids=[str(j) for j in range(i, min(size, i + step))], embeddings=vecs[i : i + step])
    bare = []
    for _ in range(100):
        t = time.perf_counter()
        col.query(query_embeddings=rng.standard_normal((1, 384)).astype("float32"), n_results=8)
        bare.append((time.perf_counter() - t) * 1000)

    def pct(xs, p):
        return round(statistics.quantiles(xs, n=100)[p - 1], 2)

    return {
        "bare_chroma_ms_p50": pct(bare, 50),
        "bare_chroma_ms_p95": pct(bare, 95),
        "hybrid_ms_p50": pct(ours, 50),
        "hybrid_ms_p95": pct(ours, 95),
        "insert_per_s": round(size / insert_s, 1),
        "index_build_s": round(index_s, 2),
        "disk_mb": round(disk / 1e6, 1),
        "index_file_mb": round(index_mb, 1),
        "first_query_fresh_s": fresh,
        "first_query_rebuild_s": rebuild,
        "recall_at_5": round(hits_at_5 / len(labels), 3),
    }


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000, 100000]
    from xiaoshuo.data.chunking import TokenCounter, load_tokenizer
    from xiaoshuo.testing import build_tiny_model

    result: dict = {"bench": "memory", "dense": "off (triggers + BM25)", "queries": 100}
    with tempfile.TemporaryDirectory() as tmp:
        counter = TokenCounter(load_tokenizer(str(build_tiny_model(Path(tmp) / "tiny")))).count
        for size in sizes:
            result[str(size)] = run(size, Path(tmp), counter)
            print(json.dumps({str(size): result[str(size)]}), file=sys.stderr)
    first, last = result[str(sizes[0])], result[str(sizes[-1])]
    result["hybrid_over_bare_p50_at_largest"] = round(last["hybrid_ms_p50"] / last["bare_chroma_ms_p50"], 2)
    result["hybrid_largest_over_smallest_p50"] = round(last["hybrid_ms_p50"] / first["hybrid_ms_p50"], 2)
    report("memory", result)


if __name__ == "__main__":
    main()
