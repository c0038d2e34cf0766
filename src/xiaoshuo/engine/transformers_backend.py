"""transformers backend: for machines without vLLM; streams through a worker thread.

One worker thread owns the model and runs requests one at a time (``generate``
is not re-entrant, and a seed needs the global RNG).  Tokens leave ``generate``
through a streamer *as they are produced* and are decoded incrementally per
candidate, then pushed into the caller's sink — not by wrapping a blocking
iterator in an async generator, which loses streaming.  Stop strings end a
candidate (and are cut from its text, as vLLM does); a cancel flag stops
``generate`` at the next token.  peft adapters switch per request.

JSON-schema requests decode under an llguidance grammar (:class:`_JsonSchemaLogits`).
Settings generate() cannot honour (presence/frequency penalties, n > 1 with
greedy decoding) are rejected, never ignored.
"""

from __future__ import annotations

import threading
from typing import Any

from xiaoshuo.config import Settings
from xiaoshuo.engine.base import END, Prepared, Sink, TextScore, WorkerQueueEngine
from xiaoshuo.engine.context_length import served_context_length
from xiaoshuo.engine.types import Delta, GenerationRequest


class CandidateText:
    """Incremental decoding of one candidate, with stop strings held back (the llamacpp backend uses it
    too, with its GGUF tokenizer)."""

    def __init__(self, tokenizer: Any, eos_ids: set[int], stops: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self.finish: str | None = None

    def add(self, token: int) -> str:
        """Feed a token; return the text that is now safe to emit."""
        if self.finish is not None:
            return ""
        if token in self.eos_ids:
            self.finish = "stop"
            return self._flush(len(self.text))
        self.ids.append(token)
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        for stop in self.stops:
            at = self.text.find(stop)
            if at >= 0:
                self.text = self.text[:at]
                self.finish = "stop"
                return self._flush(at)
        safe = len(self.text) - self.hold
        while safe > self.sent and self.text[safe - 1] == "\ufffd":  # an incomplete character
            safe -= 1
        return self._flush(safe)

    def _flush(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        piece = self.text[self.sent : upto]
        self.sent = upto
        return piece

    def rest(self) -> str:
        return self._flush(len(self.text))


class _JsonSchemaLogits:
    """A transformers logits processor that keeps each row inside a JSON schema (llguidance).

    The same grammar engine vLLM's ``guidance`` backend uses, compact JSON (no free
    whitespace).  A row whose grammar is complete may only emit EOS.
    """

    def __init__(self, ll_tokenizer: Any, schema: dict[str, Any], rows: int) -> None:
        import json

        import llguidance

        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            json.dumps(schema), defaults={"whitespace_flexible": False}
        )
        self.matchers = [llguidance.LLMatcher(ll_tokenizer, grammar) for _ in range(rows)]
        self.vocab = ll_tokenizer.vocab_size
        self.prompt_len: int | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np
        import torch

        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        else:
            for row, matcher in zip(input_ids[:, -1].tolist(), self.matchers, strict=True):
                if not matcher.is_stopped() and not matcher.is_error():
                    matcher.consume_token(int(row))
        allowed = torch.zeros(scores.shape, dtype=torch.bool)
        for i, matcher in enumerate(self.matchers):
            if matcher.is_error():
                allowed[i] = True  # unconstrained from here: the caller's validation rejects the text
                continue
            bits = np.frombuffer(bytes(matcher.compute_bitmask()), dtype=np.uint8)
            mask = np.unpackbits(bits, bitorder="little")[: min(self.vocab, scores.shape[1])]
            allowed[i, : len(mask)] = torch.from_numpy(mask.astype(bool))
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))


class TransformersEngine(WorkerQueueEngine):
    backend = "transformers"

    def __init__(self, settings: Settings, model: str, adapters: dict[str, str], *, tokenizer: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        super().__init__(
            tokenizer=tokenizer,
            max_model_len=served_context_length(settings, model),
            system_prompt=settings.engine.system_prompt,
        )
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = {
            "auto": "auto",
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
            "float32": torch.float32,
        }[settings.model.dtype]
        self._model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(self._device).eval()
        self._peft = False
        self._llg: Any = None  # llguidance tokenizer, for JSON-schema requests
        self._init_queue()
        for name, path in adapters.items():
            self.register_adapter(name, path)
        self._worker = threading.Thread(target=self._work, name="xiaoshuo-transformers", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------ adapters
    def _adapter_registered(self, name: str, path: str) -> None:
        from peft import PeftModel

        if not self._peft:
            self._model = PeftModel.from_pretrained(self._model, path, adapter_name=name).eval()
            self._peft = True
        else:
            self._model.load_adapter(path, adapter_name=name)
            self._model.eval()

    # ------------------------------------------------------------ requests
    def _check_sampling(self, request: GenerationRequest) -> None:
        s = request.sampling
        if s.presence_penalty or s.frequency_penalty:
            raise self._unsupported(
                "presence_penalty/frequency_penalty",
                (s.presence_penalty, s.frequency_penalty),
                "0 on this backend (use repetition_penalty instead)",
            )
        if s.n > 1 and s.greedy:
            raise self._unsupported(
                "n", s.n, "n = 1 with greedy decoding (temperature 0), or temperature > 0"
            )

    def _score(self, prefix: str, text: str, lora: tuple[str, str] | None) -> TextScore:
        """One forward pass over ``prefix`` + ``text`` on the worker thread (it owns the model)."""
        from concurrent.futures import Future

        pre, ids = self._score_ids(prefix, text)
        done: Future = Future()
        self._jobs.put((("score", pre, ids, lora), done))
        return done.result()

    def _score_now(self, pre: list[int], ids: list[int], lora: tuple[str, str] | None) -> TextScore:
        import contextlib

        import torch

        tokens = torch.tensor([pre + ids], device=self._device)
        adapter = contextlib.nullcontext()
        if self._peft:
            if lora is None:
                adapter = self._model.disable_adapter()
            else:
                self._model.set_adapter(lora[0])
        with torch.inference_mode(), adapter:
            logits = self._model(input_ids=tokens).logits[0, len(pre) - 1 : -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp.gather(1, torch.tensor(ids, device=logp.device).unsqueeze(1))
        return TextScore(float(picked.sum()), len(ids))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if isinstance(job[0], tuple):  # a scoring job: (("score", prefix ids, ids, lora), future)
                (_, pre, ids, lora), done = job
                try:
                    done.set_result(self._score_now(pre, ids, lora))
                except Exception as exc:
                    done.set_exception(exc)
                continue
            prepared, sink = job
            rid = prepared.request.request_id
            try:
                self._generate(prepared, sink)
            except Exception as exc:
                from xiaoshuo.engine.base import EngineError

                sink(EngineError(f"transformers 生成失败 (generation failed): {type(exc).__name__}: {exc}"))
            finally:
                with self._state_lock:
                    self._running.discard(rid)
                    self._cancelled.discard(rid)

    def _generate(self, prepared: Prepared, sink: Sink) -> None:
        import contextlib

        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        req = prepared.request
        rid = req.request_id
        s = req.sampling
        eos = self._model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        cands = [CandidateText(self.tokenizer, eos_ids, s.stop) for _ in range(s.n)]
        prompt_tokens = len(prepared.prompt_ids or ())
        engine = self

        class Streamer(BaseStreamer):
            first = True

            def put(self, value: Any) -> None:
                if self.first:  # the prompt
                    self.first = False
                    return
                for i, token in enumerate(value.reshape(-1).tolist()):
                    if cands[i].finish is not None:
                        continue  # padding after this candidate ended
                    piece = cands[i].add(int(token))
                    count = len(cands[i].ids) + (1 if cands[i].finish == "stop" else 0)
                    sink(Delta(rid, i, piece, cands[i].finish, prompt_tokens, count, (int(token),)))

            def end(self) -> None:
                pass

        class Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                with engine._state_lock:
                    cancelled = rid in engine._cancelled
                done = [cancelled or c.finish is not None for c in cands]
                return torch.tensor(done, device=input_ids.device)

        kwargs: dict[str, Any] = {
            "max_new_tokens": s.max_tokens,
            "do_sample": not s.greedy,
            "num_return_sequences": s.n,
            "repetition_penalty": s.repetition_penalty,
            "streamer": Streamer(),
            "stopping_criteria": StoppingCriteriaList([Stop()]),
            "pad_token_id": self.tokenizer.pad_token_id or next(iter(eos_ids), 0),
        }
        if s.ignore_eos:
            kwargs["min_new_tokens"] = s.max_tokens  # EOS is masked until max_tokens
        if not s.greedy:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=max(s.top_k, 0))
            if s.min_p:
                kwargs["min_p"] = s.min_p
        if req.json_schema is not None:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList(
                [_JsonSchemaLogits(self._ll_tokenizer(), req.json_schema, s.n)]
            )
        ids = torch.tensor([prepared.prompt_ids], device=self._device)
        adapter = contextlib.nullcontext()
        if self._peft:
            if prepared.lora is None:
                adapter = self._model.disable_adapter()
            else:
                self._model.set_adapter(prepared.lora[0])
        with torch.inference_mode(), adapter:
            if s.seed is not None:
                torch.manual_seed(s.seed)
            self._model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        with self._state_lock:
            cancelled = rid in self._cancelled
        for i, cand in enumerate(cands):
            if cand.finish is None:
                cand.finish = "abort" if cancelled else "length"
                sink(Delta(rid, i, cand.rest(), cand.finish, prompt_tokens, len(cand.ids)))
        sink(END)

    def _ll_tokenizer(self) -> Any:
        """llguidance's view of the tokenizer (built once, on the first JSON-schema request)."""
        if self._llg is None:
            import llguidance.hf

            vocab = max(self._model.config.get_text_config().vocab_size, len(self.tokenizer))
            self._llg = llguidance.hf.from_tokenizer(self.tokenizer, vocab)
        return self._llg

    # ------------------------------------------------------------ lifecycle
    def _shutdown(self) -> None:
        with self._state_lock:
            self._cancelled.update(self._running)
        self._jobs.put(None)
        self._worker.join(timeout=60)
        self._model = None
