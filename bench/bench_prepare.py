"""Bench: how fast is `prepare` against the bare tokenizer, and is its memory flat?

Builds synthetic corpora (default 20 MB and 200 MB; mixed UTF-8, GB18030, UTF-16
and Big5 files of ~2 MB, with chapter headings), then for each size, in a fresh
subprocess: runs the whole `prepare` (read, decode, clean, chapters, chunk, split,
write), then encodes the same decoded text with the bare fast tokenizer (the
floor).  Prints one JSON line: MB/s of both, their ratio, and peak RSS per size.
Goal: ratio >= 0.5, peak RSS at the large size <= 1.5x that at the small size.

Usage: python bench/bench_prepare.py [SMALL_MB LARGE_MB]
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

FILE_MB = 2
ENCODINGS = ["utf-8", "gb18030", "utf-16", "big5hkscs"]


def build_corpus(root: Path, megabytes: int, seed: int = 0) -> int:
    import opencc

    from xiaoshuo.data.sample import URBAN, WUXIA, XIANXIA_SIMPLIFIED
    from xiaoshuo.testing import TINY_CORPUS

    sentences = []
    for text in (WUXIA, URBAN, XIANXIA_SIMPLIFIED, TINY_CORPUS):
        for line in text.splitlines():
            line = line.strip("\u3000 ")
            if line and not line.startswith(("第", "序", "楔", "本书", "手机")):
                sentences.extend(s + "。" for s in line.split("。") if s)
    to_trad = opencc.OpenCC("s2t")
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    total, index = 0, 0
    while total < megabytes * 1_000_000:
        encoding = ENCODINGS[index % len(ENCODINGS)]
        parts, size, chapter = [], 0, 0
        while size < FILE_MB * 1_000_000:
            if rng.random() < 0.02 or chapter == 0:
                chapter += 1
                parts.append(f"第{chapter}章 标题{rng.randint(1, 999)}")
            para = "".join(rng.choice(sentences) for _ in range(rng.randint(2, 8)))
            parts.append(para)
            size += len(para) * 3
        text = "\n".join(parts)
        if encoding == "big5hkscs":
            text = to_trad.convert(text)
        data = text.encode(encoding, errors="replace")
        (root / f"book{index:04d}.txt").write_bytes(data)
        total += len(data)
        index += 1
    return total


def measure(corpus: str, tokenizer: str, workdir: str) -> None:
    """Runs in a subprocess: prints prepare and tokenizer throughput and peak RSS."""
    from xiaoshuo import config
    from xiaoshuo.data import prepare
    from xiaoshuo.data.chunking import load_tokenizer
    from xiaoshuo.data.decoding import decode_bytes

    settings = config.load(
        env={},
        cwd=workdir,
        overrides={
            "paths.data_dir": f"{workdir}/data",
            "data.tokenizer": tokenizer,
            "data.clean_drop_ads": True,
        },
    )
    tok = load_tokenizer(tokenizer)  # warm the tokenizer outside the timing
    files = sorted(Path(corpus).glob("*.txt"))
    nbytes = sum(f.stat().st_size for f in files)
    start = time.perf_counter()
    manifest = prepare(settings, input_dir=corpus)
    prepare_s = time.perf_counter() - start
    backend = tok.backend_tokenizer
    start = time.perf_counter()
    for f in files:
        text = decode_bytes(f.read_bytes()).text
        lines = text.split("\n")
        for i in range(0, len(lines), 2048):
            backend.encode_batch(lines[i : i + 2048], add_special_tokens=False)
    tokenize_s = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "bytes": nbytes,
                "prepare_s": prepare_s,
                "tokenize_s": tokenize_s,
                "peak_rss_mb": rss_mb,
                "samples": manifest["totals"]["samples"],
                "files_ok": manifest["totals"]["files_ok"],
            }
        )
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        measure(*sys.argv[2:5])
        return
    sizes = [int(a) for a in sys.argv[1:3]] if len(sys.argv) > 2 else [20, 200]
    from xiaoshuo.testing import build_tiny_model

    result: dict = {"bench": "prepare", "tokenizer": "xiaoshuo tiny byte-level BPE (offline)"}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = str(build_tiny_model(Path(tmp) / "tiny"))
        for mb in sizes:
            corpus = Path(tmp) / f"corpus{mb}"
            build_corpus(corpus, mb)
            work = Path(tmp) / f"work{mb}"
            work.mkdir()
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(corpus), tokenizer, str(work)],
                capture_output=True,
                text=True,
                check=True,
            )
            m = json.loads(out.stdout.strip().splitlines()[-1])
            mb_real = m["bytes"] / 1e6
            result[f"{mb}mb"] = {
                "corpus_mb": round(mb_real, 1),
                "prepare_mb_s": round(mb_real / m["prepare_s"], 2),
                "tokenizer_mb_s": round(mb_real / m["tokenize_s"], 2),
                "ratio": round(m["tokenize_s"] / m["prepare_s"], 2),
                "peak_rss_mb": round(m["peak_rss_mb"], 1),
                "samples": m["samples"],
            }
    small, large = (result[f"{mb}mb"] for mb in sizes)
    result["rss_large_over_small"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 2)
    result["goal_ratio_ge_0_5"] = min(small["ratio"], large["ratio"]) >= 0.5
    result["goal_rss_le_1_5x"] = result["rss_large_over_small"] <= 1.5
    report("prepare", result)


if __name__ == "__main__":
    main()
