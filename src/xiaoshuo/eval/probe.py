"""A generated probe novel: known chapters, cast, dated events and states, to measure the instruments on.

:func:`build_probe` writes a novel (card, outline with each chapter's cast, places and summary, and
optionally generated chapter text) and its memory (character cards, dated character states, dated plot
events each involving two characters, two threads — one that falls overdue — and one character who dies
and later acts, so the consistency rules have something to find).  Everything comes from one seed, so a
probe is the same on every machine.  The text is template prose, not literature: it exists so book health
and memory recall have a known answer, e.g. ``xiaoshuo eval memory`` on it must find every event that the
prompt shows and report no future leaks.

This module writes only the novel and the memory it is asked to build.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

NAMES = (
    "林远", "苏晚晴", "陈长生", "白露", "顾北辰", "沈青衣", "唐小棠", "韩烈", "萧无忌", "叶知秋",
    "温如玉", "楚狂歌", "程怀瑾", "陆小鸾", "裴寂", "秦照夜",
)  # fmt: skip
PLACES = ("青云山", "长安城", "落霞镇", "寒江渡", "藏经阁", "雪月楼", "黑水崖", "望月亭")
THINGS = (
    "玉佩", "剑谱", "密信", "铜镜", "药方", "令牌", "古琴", "地图", "账册", "银簪", "木匣", "兵符",
    "画卷", "酒壶", "佛珠", "折扇", "灯笼", "钥匙", "竹笛", "锦囊", "印章", "铁券", "香囊", "棋盘",
    "斗笠", "匕首", "经书", "残碑", "令旗", "纸鸢", "玉箫", "金钗", "罗盘", "蓑衣", "茶饼", "瓷瓶",
)  # fmt: skip
DOINGS = ("争夺", "交换", "找到", "藏起", "毁掉", "送出", "偷走", "认出")
STATES = (
    "受了内伤",
    "当上了执事",
    "隐居山中",
    "与师门决裂",
    "寻回了记忆",
    "中了奇毒",
    "拜入剑宗",
    "失去了一臂",
)
AI_LINES = (
    "{a}嘴角勾起一抹冷笑。",
    "{b}眼中闪过一丝慌乱，不由得后退半步。",
    "{a}深吸一口气，心中一动。",
    "空气仿佛凝固了，{b}瞳孔一缩。",
)
PLAIN_LINES = (
    "{a}推开门，雨水顺着檐角落下来。",
    "“你来晚了。”{b}说。",
    "{a}没有回答，把剑放在桌上，倒了一杯冷茶。",
    "窗外有人走过，脚步声很轻，停了一下，又远了。",
    "{b}把灯拨亮了些，{a}看清了墙上的字。",
    "“明天一早就走。”{a}说，“别等我。”",
    "{place}的夜里很冷，炉子里的炭只剩一点红。",
    "{b}低头数着桌上的铜钱，数到一半又停了。",
)


@dataclass
class Probe:
    slug: str
    chapters: int
    names: list[str]
    events: list[Any] = field(default_factory=list)  # the dated plot entries (MemoryEntry)
    states: list[Any] = field(default_factory=list)  # the dated character entries
    cast: dict[int, list[str]] = field(default_factory=dict)
    dead: tuple[str, int] | None = None  # (name, chapter of death)


def _event_chapters(events: int, chapters: int) -> list[int]:
    return [max(1, min(chapters, round((i + 1) * chapters / (events + 1)))) for i in range(events)]


def build_probe(
    novels: Any,
    store: Any,
    slug: str = "probe",
    *,
    chapters: int = 60,
    characters: int = 10,
    events: int = 36,
    seed: int = 0,
    written: int | None = None,
    chapter_chars: int = 1200,
    cast_size: int = 3,
) -> Probe:
    """Write the probe novel ``slug`` into ``novels`` and its memory into ``store`` (None: no memory).

    ``written``: how many chapters get generated text (default all); ``chapter_chars``: their target.
    """
    from xiaoshuo.memory import make_entry

    if not 2 <= characters <= len(NAMES):
        raise ValueError(f"characters must be 2..{len(NAMES)}")
    rng = random.Random(seed)
    names = list(NAMES[:characters])
    probe = Probe(slug, chapters, names)
    novel = novels.create(slug, title="探针之书", genre="武侠", chapter_chars=chapter_chars)
    entries = [
        make_entry(
            novel=slug,
            kind="character",
            name=name,
            text=f"{name}，{rng.choice(PLACES)}出身的剑客，话不多。",
            traits=[rng.choice(["沉默", "机敏", "固执", "温和"])],
        )
        for name in names
    ]
    entries += [
        make_entry(novel=slug, kind="setting", name=p, text=f"{p}，江湖上人人知道的地方。") for p in PLACES
    ]
    for i, ch in enumerate(_event_chapters(events, chapters)):
        a, b = rng.sample(names, 2)
        thing = THINGS[i % len(THINGS)] + ("" if i < len(THINGS) else str(i // len(THINGS) + 1))
        e = make_entry(
            novel=slug,
            kind="plot",
            chapter=ch,
            name=f"{thing}之事",
            text=f"{a}与{b}在{rng.choice(PLACES)}{rng.choice(DOINGS)}{thing}。",
            characters=[a, b],
            importance=rng.randint(2, 4),
        )
        probe.events.append(e)
    for k, name in enumerate(names):  # two dated states each (one on a very short probe), spread out
        used: set[int] = set()
        for j in range(2):
            ch = max(1, min(chapters, (k * 5 + j * chapters // 2 + 3) % chapters + 1))
            if ch in used:
                continue
            used.add(ch)
            probe.states.append(
                make_entry(
                    novel=slug,
                    kind="character",
                    name=name,
                    text=f"{name}在第{ch}章之后的样子",
                    state=STATES[(k + j) % len(STATES)],
                    chapter=ch,
                )
            )
    dead_name, dead_at = names[-1], min(chapters, max(2, chapters // 3))
    probe.dead = (dead_name, dead_at)
    probe.states = [s for s in probe.states if not (s.name == dead_name and s.chapter >= dead_at)]
    probe.states.append(
        make_entry(novel=slug, kind="character", name=dead_name, text=f"{dead_name}战死", state="战死",
                   chapter=dead_at)
    )  # fmt: skip
    threads = [
        make_entry(novel=slug, kind="plot", chapter=2, name="半部剑谱", text="老人留下半部剑谱，下落不明。",
                   thread="open", payoff_chapter=min(chapters, 6)),
        make_entry(novel=slug, kind="plot", chapter=3, name="旧案", text="二十年前的旧案还没有查清。",
                   thread="open", payoff_chapter=chapters + 20),
    ]  # fmt: skip
    if store is not None:
        store.add([*entries, *probe.events, *probe.states, *threads])

    plans = []
    for n in range(1, chapters + 1):
        cast = rng.sample(names, min(cast_size, len(names)))
        probe.cast[n] = cast
        place = rng.choice(PLACES)
        plans.append(
            {
                "title": f"第{n}回",
                "synopsis": f"{cast[0]}在{place}遇见{cast[1]}，两人说起旧事。",
                "characters": cast,
                "places": [place],
                "summary": f"{cast[0]}与{cast[1]}在{place}见面。",
            }
        )
    novel.import_outline({"volumes": [{"title": "第一卷", "chapters": plans}]})
    n_written = chapters if written is None else min(written, chapters)
    with novel.writer():
        for n in range(1, n_written + 1):
            novel.set_text(n, chapter_text(rng, probe, n, chapter_chars), note="probe")
    return probe


def chapter_text(rng: random.Random, probe: Probe, n: int, chars: int) -> str:
    """Template prose for chapter ``n``: its cast talking; AI味 lines grow more frequent towards the end;
    the dead character speaks once after dying."""
    cast = probe.cast[n]
    a, b = cast[0], cast[1]
    share = 0.05 + 0.25 * (n - 1) / max(1, probe.chapters - 1)
    lines = []
    if probe.dead is not None and n > probe.dead[1] and n == probe.dead[1] + 2:
        lines.append(f"{probe.dead[0]}说：“我还没走。”")
    total = 0
    while total < chars:
        pool = AI_LINES if rng.random() < share else PLAIN_LINES
        line = rng.choice(pool).format(a=a, b=b, place=rng.choice(PLACES))
        lines.append(line)
        total += len(line)
    return "\n".join(lines) + "\n"
