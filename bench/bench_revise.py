"""Bench: `chapter revise` against plainly generating the same passages (goal: revise ≤ 1.5× plain).

A novel of CHAPTERS earlier chapters × 3,000 字 and one 3,000-字 chapter with planted problems (two
repeated paragraphs and a dozen AI味 phrases) is built in a temp folder.  Timed on the same engine:

* ``revise_s`` — ``revise_chapter(passes=1, candidates=1)``: the review, the flagged passages generated
  through the segment loop, every candidate reviewed again, the kept version written;
* ``plain_s`` — generating the passages the revise generated (same spans, same target lengths, all at
  once) with plain 改写 operations (``Writer.rewrite_operation`` + ``Writer.generate``), nothing reviewed
  or saved.

Medians of ``--repeat`` alternated rounds after a warm-up round.  The engine is a scripted one that
streams at a fixed rate (``--chars-per-s`` per request, requests concurrently, as a batching engine
does), so the ratio measures what revise adds around generation; with
``--vllm MODEL_DIR`` it is vLLM on that model instead (e.g. the tiny test model).  One JSON line; usage:
python bench/bench_revise.py [--chapters 20] [--chars-per-s 400] [--repeat 4] [--vllm MODEL_DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

from _common import report

PARA = "城门口的老槐树下，卖糖人的老汉收起了担子，雨水顺着油布滴进泥地里，巷子深处传来更夫的梆子声。"
PARA2 = "客栈的伙计端来一壶热酒，酒香混着柴火的烟味，在潮湿的堂屋里慢慢散开，窗外的雨声一阵紧过一阵。"
AI = ["他眼中闪过一丝寒意。", "她嘴角勾起一抹冷笑。", "林远深吸一口气。", "掌柜瞳孔一缩。"]


def prose(rng: random.Random, chars: int) -> str:
    out, n = [], 0
    while n < chars:
        k = rng.randint(8, 30)
        out.append("".join(chr(0x4E00 + rng.randrange(6000)) for _ in range(k)) + "。")
        n += k + 1
    return "".join(out)


def planted(rng: random.Random) -> str:
    parts = [prose(rng, 300), PARA, prose(rng, 300), PARA2]
    for i in range(12):
        parts += [prose(rng, 150), AI[i % len(AI)]]
    parts += [PARA, prose(rng, 200), PARA2, prose(rng, 200)]
    return "\n".join(parts)


def scripted_engine(chars_per_s: float):
    from xiaoshuo.testing import ScriptedEngine

    rng = random.Random(7)
    chunk = 4

    class Paced(ScriptedEngine):
        def respond(self, request) -> str:
            m = re.findall(r"约(\d+)字", request.messages[-1]["content"])
            return prose(rng, int(m[-1]) + 5 if m else 100)

    return contextlib.nullcontext(Paced(chunk=chunk, delay=chunk / chars_per_s))


def main() -> None:
    from xiaoshuo import config
    from xiaoshuo.eval.flavour import load_flavour
    from xiaoshuo.writing import Novels, Writer, count_chars
    from xiaoshuo.writing.revise import revise_chapter

    ap = argparse.ArgumentParser()
    ap.add_argument("--chapters", type=int, default=20)
    ap.add_argument("--chars-per-s", type=float, default=400.0)
    ap.add_argument("--vllm", default="")
    ap.add_argument("--repeat", type=int, default=4, help="Rounds (the first is a warm-up).")
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="xiaoshuo-bench-revise-") as tmp:
        overrides = {"paths.data_dir": str(Path(tmp) / "data"), "memory.embedding_model": "none"}
        if args.vllm:
            from xiaoshuo.testing import tiny_engine_settings

            settings = tiny_engine_settings(args.vllm, tmp, **overrides)
        else:
            settings = config.load(env={}, cwd=tmp, overrides=overrides)
        novel = Novels.from_settings(settings).create("bench", title="修订", chapter_chars=3000)
        n = args.chapters + 1
        novel.import_outline(
            {"volumes": [{"title": "一", "chapters": [{"title": f"第{i}章"} for i in range(1, n + 1)]}]}
        )
        for i in range(1, n):
            novel.set_text(i, prose(rng, 3000))
        text = planted(rng)
        novel.update_plan(n, target_chars=count_chars(text))
        novel.set_text(n, text)
        if args.vllm:
            from xiaoshuo.engine import load_engine

            opened = load_engine(settings, backend="vllm")
        else:
            opened = scripted_engine(args.chars_per_s)
        with opened as engine:
            writer = Writer(settings, engine, novel, memory_on=False)
            flavour = load_flavour()
            revise_times, plain_times = [], []
            for _ in range(args.repeat):  # alternated; the first round also warms both paths up
                novel.set_text(n, text)
                t0 = time.perf_counter()
                result = asyncio.run(revise_chapter(writer, n, flavour=flavour, passes=1, seed=3))
                revise_times.append(time.perf_counter() - t0)
                edits = result.passes[0]["edits"]
                novel.set_text(n, text)  # the same starting text for the plain run
                ops = [
                    writer.rewrite_operation(
                        n, start=e["start"], end=e["end"], instruction="", chars=e["target_chars"]
                    )
                    for e in edits
                ]

                async def plain(ops=ops):
                    return await asyncio.gather(*(writer.generate(op, seed=3) for op in ops))

                t1 = time.perf_counter()
                asyncio.run(plain())
                plain_times.append(time.perf_counter() - t1)
            revise_s, plain_s = statistics.median(revise_times[1:]), statistics.median(plain_times[1:])
    report(
        "bench_revise",
        {
            "bench": "revise",
            "engine": f"vllm:{args.vllm}"
            if args.vllm
            else f"scripted {args.chars_per_s:.0f} 字/s per request",
            "earlier_chapters": args.chapters,
            "chapter_chars": count_chars(text),
            "edits": len(edits),
            "edited_chars": sum(e["chars"] for e in edits),
            "weighted_before": result.before.weighted,
            "weighted_after": result.after.weighted,
            "kept": result.kept,
            "revise_s": round(revise_s, 3),
            "revise_generate_s": round(result.generate_seconds, 3),
            "rounds": len(revise_times) - 1,
            "plain_s": round(plain_s, 3),
            "ratio": round(revise_s / plain_s, 3) if plain_s else None,
            "ratio_goal": 1.5,
        },
    )


if __name__ == "__main__":
    main()
