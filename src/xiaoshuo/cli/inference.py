"""``xiaoshuo inference``: one streamed generation or an interactive loop over :mod:`xiaoshuo.engine`."""

from __future__ import annotations

from typing import Annotated

import typer

from xiaoshuo.cli.options import BackendOpt, LoraOpt, ModelOpt, choose_adapter
from xiaoshuo.cli.state import cli_state

app = typer.Typer()


@app.command("inference")
def inference_cmd(
    ctx: typer.Context,
    prompt: Annotated[
        str | None, typer.Option("--prompt", "-p", help="Generate once; without it: interactive.")
    ] = None,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Send the prompt as plain text to continue (default: a chat message)."),
    ] = False,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    lora: LoraOpt = None,
    adapter: Annotated[
        str | None,
        typer.Option(
            "--adapter",
            help="Adapter: a --lora name, a trained adapter's name (xiaoshuo adapters list), a peft folder,"
            " or none (default: the first --lora).",
        ),
    ] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", "-t")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k")] = None,
    min_p: Annotated[float | None, typer.Option("--min-p")] = None,
    repetition_penalty: Annotated[float | None, typer.Option("--repetition-penalty")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens")] = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="Stop string (repeatable).")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Number of candidates.")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per candidate at the end.")
    ] = False,
) -> None:
    """推理测试 / Generate text: stream one answer, or chat interactively."""
    from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine, parse_lora_specs

    settings = cli_state(ctx).settings()
    # Everything that can be wrong is checked before the (slow) engine starts.
    sampling = SamplingSettings.from_config(
        settings.generation,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        max_tokens=max_tokens,
        stop=tuple(stop) if stop else None,
        n=n,
        seed=seed,
    )
    adapters = parse_lora_specs(lora)
    use = choose_adapter(settings, adapters, adapter, backend or settings.engine.backend)
    if prompt is not None:
        GenerationRequest(prompt=prompt, sampling=sampling)  # validates the prompt
    with load_engine(settings, backend=backend, model=model, lora=adapters) as engine:
        run_inference(engine, prompt, sampling=sampling, raw=raw, lora=use, as_json=as_json)


def run_inference(
    engine, prompt: str | None, *, sampling, raw: bool, lora: str | None, as_json: bool
) -> None:
    """Stream one generation (or an interactive loop) to the terminal."""
    import asyncio
    import json
    import sys

    from xiaoshuo.engine import GenerationRequest

    def request(text: str) -> GenerationRequest:
        if raw:
            return GenerationRequest(prompt=text, sampling=sampling, lora=lora)
        return GenerationRequest(messages=[{"role": "user", "content": text}], sampling=sampling, lora=lora)

    async def once(text: str) -> dict[int, dict]:
        out: dict[int, dict] = {}
        async for d in engine.stream(request(text)):
            c = out.setdefault(d.index, {"index": d.index, "text": "", "finish_reason": None, "tokens": 0})
            c["text"] += d.text
            c["tokens"] = d.completion_tokens
            c["finish_reason"] = d.finish_reason or c["finish_reason"]
            if d.index == 0 and not as_json:
                sys.stdout.write(d.text)
                sys.stdout.flush()
        return out

    def show(out: dict[int, dict]) -> None:
        if as_json:
            for i in sorted(out):
                print(json.dumps(out[i], ensure_ascii=False))
            return
        print()
        for i in sorted(out)[1:]:
            print(f"\n--- 候选 candidate {i} ---\n{out[i]['text']}")

    if prompt is not None:
        show(asyncio.run(once(prompt)))  # each call uses a fresh event loop: the engine does not care
        return
    print("交互模式 interactive: 输入内容回车生成，exit 或 Ctrl-D 退出", file=sys.stderr)
    while True:
        try:
            text = input("你> ")
        except EOFError:
            break
        if text.strip() in ("exit", "quit"):
            break
        if text.strip():
            show(asyncio.run(once(text)))
