"""A small original sample corpus (written for this project) for ``prepare --sample``.

Several genres, several encodings (UTF-8 with site banners, GB18030, Big5
traditional, UTF-16 JSON, JSONL) and several heading styles, so a new user sees
the whole pipeline — decoding, cleaning, chapters, chunking — without their own
novels.  This module only writes files; it does not prepare them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from xiaoshuo.files import atomic_write

WUXIA = """楔子
　　江湖上流传着一句话：青云剑出，雨落无声。没有人见过那柄剑，却人人都怕它。
第一章 雨夜
　　夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，站在城门外的老槐树下，望着远处渐渐熄灭的灯火。
　　“你终于来了。”身后传来一个清冷的声音。
　　林远没有回头，只是轻轻叹了口气：“师姐，十年了，你还是这样。”
　　苏晚晴从阴影里走出来，手里握着一柄长剑，剑鞘上刻着一朵小小的梅花。她看着他，眼中有说不清的情绪。
本书首发笔趣阁 www.example-novel.com 请记住本站网址
第二章 旧事
　　十年前，青云山上的那场大火烧毁了半座藏经阁。没有人知道火是从哪里起的，只知道那一夜，掌门失踪了。
　　林远那时只有十五岁。他记得自己背着受伤的师弟，在浓烟里跌跌撞撞地跑下山，身后是倒塌的房梁和哭喊声。
　　师弟在他背上一直在说话，说山下的桃花开了，说等伤好了要去看。林远一句也没有听清。
第三章 重逢
　　客栈里人声嘈杂。掌柜是个胖胖的中年人，一边拨着算盘，一边偷偷打量这两位深夜来客。
　　“两间上房。”苏晚晴把一锭银子放在柜台上。掌柜连忙笑着应道：“好嘞，二位客官楼上请！”
　　窗外的雨越下越大。林远坐在桌前，打开那封泛黄的信，信上只有八个字：山河故人，此去经年。
　　他忽然明白了什么，猛地站起身来。远处传来马蹄声，一队黑衣人正朝客栈飞驰而来。
手机用户请浏览 m.example-novel.com 阅读，更优质的阅读体验。
"""

URBAN = """第一卷 归途
第十一章 末班车
晚上十一点，城市的灯光一盏接一盏地暗下去。陈默拖着行李箱，赶上了最后一班开往城郊的公交车。
车上只有三个人：打瞌睡的司机，戴耳机的女学生，还有一个抱着纸箱的老人。纸箱里偶尔传出几声细细的猫叫。
陈默在后排坐下，窗玻璃映出他疲惫的脸。五年了，他第一次回家，却不知道该怎么开口。
第十二章 老街
老街还是从前的样子，只是路灯换成了新的。巷口的早餐铺子早已关门，招牌上的字掉了一半。
他站在家门口，手举起来又放下。门里传来电视的声音，还有母亲咳嗽的声音。
“谁呀？”母亲问。陈默张了张嘴，半天才说出一句：“妈，是我。”
门开了。母亲愣了很久，然后转身进了厨房：“饿了吧，我给你下碗面。”
第二卷 晴天
第二十一章 早晨
第二天是个晴天。陈默很早就醒了，听见楼下有人在吆喝卖豆腐脑，声音和小时候一模一样。
他下楼买了两碗，端回家时，母亲已经把桌子擦得干干净净。两个人面对面坐着，谁也没有先说话。
"""

XIANXIA_SIMPLIFIED = """序章
天地初开之时，九州之上有九座仙山，山中住着修道之人。他们餐风饮露，与天地同寿。
第一回 入山
少年顾长歌背着一个破旧的包袱，站在云雾缭绕的山门前。山门上写着四个大字：问道青云。
守门的道童打量了他半天，问道：“你来做什么？”顾长歌说：“我来拜师学道。”
道童笑了：“每年来拜师的人有上千个，能留下来的不过十人。你凭什么？”
顾长歌想了想，说：“我走了三个月的路，鞋子磨破了七双。我不会走。”
第二回 试炼
第一道试炼是登山。九千九百级台阶，一步一步，不许用任何法术。
走到一半，许多人都停了下来。顾长歌的腿在发抖，可他还是一级一级地往上走。
夕阳西下的时候，他终于看见了山顶的大殿。殿前站着一位白发老人，正微笑着看他。
"""

SCIFI_JSON = [
    {
        "title": "星海尽头",
        "author": "示例作者",
        "genre": "科幻",
        "tags": ["太空", "孤独"],
        "content": (
            "第一章 信号\n"
            "飞船“远航号”已经在深空中航行了二十三年。舰长林雪每天早上都会检查一遍通讯记录，"
            "虽然她知道，地球的信号早在十年前就已经收不到了。\n"
            "这一天，屏幕上忽然跳出一行绿色的字：检测到未知信号源。\n"
            "林雪盯着那行字看了很久，手指悬在按钮上方，迟迟没有按下去。\n"
            "第二章 回应\n"
            "信号来自一颗没有名字的小行星。它每隔七秒重复一次，像是某种心跳。\n"
            "“要回应吗？”副舰长问。林雪点点头：“告诉它们，我们来自地球，我们没有恶意。”\n"
        ),
    },
    {
        "title": "雨巷",
        "author": "示例作者",
        "genre": "言情",
        "content": (
            "第一章 伞\n"
            "那年春天雨水很多。沈知意每天放学都要经过一条长长的小巷，巷子尽头有一家旧书店。\n"
            "有一天她忘了带伞，站在书店屋檐下等雨停。一个少年从店里走出来，把手里的伞递给她。\n"
            "“你拿去吧，我家就在隔壁。”他说完就冲进了雨里。\n"
        ),
    },
]

HISTORY_JSONL = [
    {
        "title": "长安旧梦",
        "genre": "历史",
        "content": (
            "第一章 入城\n"
            "贞观年间，一个年轻的书生骑着瘦马进了长安城。城门高大，街道宽阔，"
            "两旁是望不到头的店铺和酒楼。\n"
            "他在一家茶馆坐下，听邻桌的人说，今年的科举格外难考。书生笑了笑，把茶一饮而尽。\n"
        ),
    },
    {
        "title": "边关月",
        "genre": "历史",
        "content": (
            "第一章 烽火\n"
            "边关的月亮比京城的更大，也更冷。守将赵青站在城楼上，望着远方起伏的沙丘。\n"
            "半夜时分，西边的烽火台忽然亮了。赵青拔出佩刀，大声喊道：“全军集合！”\n"
        ),
    },
]


def write_sample_corpus(raw_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the sample files into ``raw_dir`` (atomically each) and return their paths."""
    import opencc

    raw = Path(raw_dir)
    raw.mkdir(parents=True, exist_ok=True)
    traditional = opencc.OpenCC("s2t").convert(XIANXIA_SIMPLIFIED)
    files = {
        "sample-武侠-青云剑.txt": WUXIA.replace("\n", "\r\n").encode("utf-8"),
        "sample-都市-归途.txt": URBAN.encode("gb18030"),
        "sample-仙侠-問道.txt": traditional.encode("big5hkscs"),
        "sample-科幻言情.json": json.dumps(SCIFI_JSON, ensure_ascii=False, indent=1).encode("utf-16"),
        "sample-历史.jsonl": "\n".join(json.dumps(o, ensure_ascii=False) for o in HISTORY_JSONL).encode(
            "utf-8"
        ),
    }
    return [atomic_write(raw / name, data) for name, data in files.items()]
