"""Load the base model (LoRA or QLoRA 4-bit), wrap it with peft, and build the ``Trainer``.

QLoRA: bitsandbytes nf4 with double quantization and bf16 compute, on GPU and
on CPU.  CPU bug (bitsandbytes 0.50): any eval-mode forward switches
``Linear4bit`` weights to an inference-only layout and the next training step
fails with "a view of a leaf Variable that requires grad is being used in an
in-place operation"; setting ``support_avx512bf16_for_cpu = False`` on every
``Linear4bit`` before training avoids it (tested with an eval mid-training).

This module builds objects; ``run.py`` decides what to run.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from xiaoshuo.errors import DependencyError


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_model(settings, *, use_cuda: bool, flash: bool):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    m = settings.model
    kwargs: dict[str, Any] = {}
    if flash:
        kwargs["attn_implementation"] = "flash_attention_2"
    if m.load_in_4bit:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise DependencyError(
                "QLoRA 需要 bitsandbytes (QLoRA needs bitsandbytes)",
                fix="pip install bitsandbytes，或用 --no-qlora 做普通 LoRA",
            )
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": 0} if use_cuda else "cpu"
        kwargs["dtype"] = torch.bfloat16
    else:
        bf16 = use_cuda and torch.cuda.is_bf16_supported()
        kwargs["dtype"] = torch.bfloat16 if bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(m.base_model, **kwargs)
    model.config.use_cache = False
    if m.load_in_4bit:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=settings.training.gradient_checkpointing
        )
    targets = m.lora_target_modules
    lora = LoraConfig(
        r=m.lora_r,
        lora_alpha=m.lora_alpha,
        lora_dropout=m.lora_dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    if settings.training.gradient_checkpointing:
        model.enable_input_require_grads()
    if m.load_in_4bit and not use_cuda:
        _cpu_4bit_workaround(model)
    return model


def _cpu_4bit_workaround(model) -> int:
    import bitsandbytes as bnb

    count = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


def build_trainer(plan, tokenizer, train_rows, val_rows, callbacks) -> tuple[Any, dict[str, Any]]:
    import datasets
    import torch
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening, Trainer, TrainingArguments

    settings = plan.settings
    t = settings.training
    use_cuda = _cuda()
    flash = use_cuda and importlib.util.find_spec("flash_attn") is not None
    strategy = {
        "device": "cuda" if use_cuda else "cpu",
        "batching": "padding-free (FlashAttention-2)" if flash else "length-grouped padded batches",
        "qlora": settings.model.load_in_4bit,
        "why": "flash-attn installed on a CUDA GPU"
        if flash
        else "CPU: packing has no varlen kernel and is ~1.5x slower"
        if not use_cuda
        else "no flash-attn installed",
    }
    model = load_model(settings, use_cuda=use_cuda, flash=flash)

    def to_dataset(rows):
        return datasets.Dataset.from_list([{**r, "length": len(r["input_ids"])} for r in rows])

    train_ds = to_dataset(train_rows)
    val_ds = to_dataset(val_rows) if val_rows else None
    if flash:
        collator = DataCollatorWithFlattening()
        train_ds = train_ds.remove_columns(["length"])
        val_ds = val_ds.remove_columns(["length"]) if val_ds is not None else None
    else:
        pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")

        def collator(features):  # "length" only feeds the length-grouped sampler
            return pad([{k: v for k, v in f.items() if k != "length"} for f in features])

    tensorboard = importlib.util.find_spec("tensorboard") is not None
    args = TrainingArguments(
        output_dir=str(plan.run_dir),
        num_train_epochs=t.num_train_epochs,
        max_steps=plan.max_steps if plan.max_steps else -1,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type="cosine",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if val_ds is not None else "no",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=3,
        seed=t.seed,
        data_seed=t.seed,
        train_sampling_strategy="random" if flash else "group_by_length",
        gradient_checkpointing=t.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        use_cpu=not use_cuda,
        bf16=use_cuda and torch.cuda.is_bf16_supported(),
        report_to=["tensorboard"] if tensorboard else "none",
        remove_unused_columns=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our event log and progress bar replace its dict prints
    return trainer, strategy
