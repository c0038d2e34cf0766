"""The built-in tiny model: a real Qwen2 model + tokenizer folder, built offline in seconds.

``build_tiny_model(path)`` writes a Hugging Face model folder that every part of xiaoshuo
loads like a real base model:

* a ``Qwen2ForCausalLM`` with random weights (head_dim 32, which vLLM's CPU
  attention supports; ``size="bench"`` gives a ~50M-parameter variant),
* a byte-level BPE tokenizer trained on a little Chinese text (any text encodes),
* the Qwen ChatML chat template, with ``{% generation %}`` markers around the
  assistant turn so assistant-only loss works, and ``<|im_end|>`` as EOS.

The output is deterministic for a given spec and cached by a content stamp.  Used by the
``builtin-tiny`` tokenizer (``data.tokenizer``), the demo, ``doctor --smoke`` and the test kit
(:mod:`xiaoshuo.testing`).  Not a model zoo: it never downloads, and its models write noise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Original sample prose (written for this project) used to train the tiny tokenizer.
TINY_CORPUS = """第一章 雨夜
夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，站在城门外的老槐树下，望着远处渐渐熄灭的灯火。
“你终于来了。”身后传来一个清冷的声音。林远没有回头，只是轻轻叹了口气：“师姐，十年了，你还是这样。”
苏晚晴从阴影里走出来，手里握着一柄长剑，剑鞘上刻着一朵小小的梅花。她看着他，眼中有说不清的情绪。
第二章 旧事
十年前，青云山上的那场大火烧毁了半座藏经阁。没有人知道火是从哪里起的，只知道那一夜，掌门失踪了。
林远那时只有十五岁。他记得自己背着受伤的师弟，在浓烟里跌跌撞撞地跑下山，身后是倒塌的房梁和哭喊声。
第三章 重逢
客栈里人声嘈杂。掌柜是个胖胖的中年人，一边拨着算盘，一边偷偷打量这两位深夜来客。
“两间上房。”苏晚晴把一锭银子放在柜台上。掌柜连忙笑着应道：“好嘞，二位客官楼上请！”
窗外的雨越下越大。林远坐在桌前，打开那封泛黄的信，信上只有八个字：山河故人，此去经年。
他忽然明白了什么，猛地站起身来。远处传来马蹄声，一队黑衣人正朝客栈飞驰而来。
"""


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of a tiny Qwen2 model.  ``hidden_size / num_attention_heads`` must be a
    head size vLLM's CPU attention supports (32, 64, 80, 96, 112, 128, …)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    vocab_size: int = 1024  # tokenizer target; the model pads to a multiple of 64
    max_position_embeddings: int = 4096
    # Wide random weights make greedy output varied (0.02 yields "\n\n\n…"), so tests can
    # tell outputs apart (an adapter changed it, two backends agree token for token).
    initializer_range: float = 0.3
    seed: int = 0


SIZES: dict[str, TinyModelSpec] = {
    "tiny": TinyModelSpec(),
    # ~19M parameters: big enough to memorise a few passages in a quick overfit test.
    "small": TinyModelSpec(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=6,
        num_attention_heads=8,
        num_key_value_heads=2,
        vocab_size=1024,
        initializer_range=0.02,
    ),
    # ~50M parameters: for benchmarks, big enough that kernels (not Python) dominate.
    "bench": TinyModelSpec(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=16,
        num_attention_heads=8,
        num_key_value_heads=2,
        vocab_size=1024,
        initializer_range=0.1,
    ),
}

_STAMP = "xiaoshuo_tiny_model.json"


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    *,
    size: str = "tiny",
    spec: TinyModelSpec | None = None,
    dtype: str = "float32",
) -> Path:
    """Write a tiny Qwen2 model + tokenizer folder at ``out_dir`` and return its path.

    Re-uses an existing folder built from the same spec.  Imports torch and
    transformers lazily (the CLI stays fast).
    """
    spec = spec or SIZES[size]
    out = Path(out_dir)
    stamp = {"spec": asdict(spec), "dtype": dtype, "corpus": _sha(TINY_CORPUS), "v": 1}
    stamp_path = out / _STAMP
    if stamp_path.is_file() and json.loads(stamp_path.read_text("utf-8")) == stamp:
        return out

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=out.parent))
    try:
        tokenizer = _build_tokenizer(spec)
        tokenizer.save_pretrained(tmp)
        _build_model(spec, tokenizer, dtype).save_pretrained(tmp)
        (tmp / _STAMP).write_text(json.dumps(stamp), "utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)  # atomic: a half-built model is never visible
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _build_tokenizer(spec: TinyModelSpec):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TINY_CORPUS.splitlines() * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHATML_TEMPLATE,
        model_max_length=spec.max_position_embeddings,
    )


def _build_model(spec: TinyModelSpec, tokenizer, dtype: str):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    vocab = -(-len(tokenizer) // 64) * 64
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        initializer_range=spec.initializer_range,
        tie_word_embeddings=True,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
        dtype=dtype,
    )
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad)
    return model


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
