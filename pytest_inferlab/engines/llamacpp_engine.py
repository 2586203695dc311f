"""llama.cpp as an engine (llama-cpp-python): GGUF files run by the runtime built for them.

The lab's ``gguf`` source dequantizes a GGUF file to float32 and runs it through transformers,
which measures transformers, not GGUF quantization. This engine runs the file itself: prompts are
the same token ids the other engines get (encoded by the file's tokenizer as transformers reads
it; ``tests/unit/test_llamacpp.py`` checks llama.cpp's own tokenizer agrees), every token is
timestamped as llama.cpp yields it, and the file's tensor bytes are the model's bytes.

llama.cpp keeps the KV cache of the last sequence and reuses a matching prompt prefix. Reuse is
off unless asked for (``LlamaCppSettings(prefix_reuse=True)``), so that TTFT measures prefill; the
record's ``engine.facts.llamacpp`` says which. One ``Llama`` runs one sequence at a time: the
requests of a batch are generated one after another, all sent at the batch's start, so a later
request's TTFT includes its wait (the record says so in ``facts.llamacpp.batching``).

Speculative decoding (``drafting_with``) is llama-cpp-python's own: a second ``Llama`` on the same
file with ``draft_model=`` (prompt lookup, or a lower rung drafting), counted into ``assist_log``
like transformers' assisted generation: target forwards are the ``eval`` calls, one per verify.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.engines.base import Engine, EngineInfo, encode_prompt
from pytest_inferlab.ground.trace import AssistUsage, Request, RequestTrace
from pytest_inferlab.specs.core import ModelSpec, SamplingSpec, SpeculativeSpec

INSTALL_HINT = "pip install -e '.[llamacpp]' (make install builds it from the lock: about 5 minutes, once)"


class LlamaCppUnavailable(RuntimeError):
    """llama-cpp-python is not installed (the message names the install command)."""


def llamacpp_missing() -> str | None:
    """Why the llama.cpp engine cannot run here, or None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"needs llama-cpp-python: {INSTALL_HINT}"
    return None


@dataclass(frozen=True, slots=True)
class LlamaCppSettings:
    """How llama.cpp runs a file; each setting is recorded (``engine.facts.llamacpp``)."""

    threads: int | None = field(default=None, metadata={"help": "generation threads; None: torch's thread count"})
    batch_tokens: int = field(default=512, metadata={"help": "prompt tokens evaluated per llama_decode (n_batch)"})
    context: int = field(default=4096, metadata={"help": "context length (n_ctx)"})
    prefix_reuse: bool = field(default=False, metadata={"help": "reuse the KV of a prompt prefix the last request "
                                                                "shared (off: TTFT measures the whole prefill)"})

    def __post_init__(self) -> None:
        for name in ("batch_tokens", "context"):
            if getattr(self, name) < 1:
                raise ValueError(f"LlamaCppSettings.{name} must be >= 1, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"LlamaCppSettings.threads must be >= 1 or None, got {self.threads}")


def _threads(settings: LlamaCppSettings) -> int:
    if settings.threads is not None:
        return settings.threads
    import torch  # --inferlab-threads sets torch's count; llama.cpp gets the same

    return torch.get_num_threads()


class LlamaCppEngine(Engine):
    """A GGUF file run by llama.cpp on the CPU, one sequence at a time."""

    def __init__(self, llama: Any, tokenizer: Any, info: EngineInfo, settings: LlamaCppSettings,
                 draft: Any = None, plain: "LlamaCppEngine | None" = None) -> None:
        self.llama, self.tokenizer, self.info, self.settings = llama, tokenizer, info, settings
        self.draft = draft  # the counted LlamaDraftModel this Llama drafts with (None: no drafting)
        self.plain = plain  # the same file decoding on its own (the undrafted twin of a drafting engine)
        self.assist_log: list[AssistUsage] = []  # per request with drafting: forwards, proposals, time
        # a rung (spec.quant set) is rebuilt by its method; the model's own file would rebuild as transformers
        self.rebuild = info.model if info.model.quant is not None and draft is None else None

    @classmethod
    def load(cls, spec: ModelSpec, device: Device, settings: LlamaCppSettings = LlamaCppSettings(),
             path: Path | None = None) -> "LlamaCppEngine":
        """``path``: the GGUF file to run (a quantization rung); default the model's own file."""
        from pytest_inferlab.engines.sources import _gguf_tokenizer, gguf_file_type, gguf_path_of, gguf_tensor_sizes

        missing = llamacpp_missing()
        if missing:
            raise LlamaCppUnavailable(f"the llamacpp engine {missing}")
        if device.kind != "cpu":
            raise ValueError(f"the llamacpp engine runs on the CPU here (this build has no GPU offload); got {device}")
        source = gguf_path_of(spec)
        path = Path(path or source)
        threads = _threads(settings)
        llama = _llama(path, settings, threads)
        params, nbytes = gguf_tensor_sizes(path)
        facts = {"weights_file": path.name, "gguf_file_type": gguf_file_type(path),
                 "llamacpp": {**dataclasses.asdict(settings), "threads": threads,
                              "batching": "one sequence at a time; a batch's requests are all sent at its start",
                              "version": _version()}}
        info = EngineInfo(engine="llamacpp", model=spec, device=device, dtype=facts["gguf_file_type"] or "gguf",
                          parameters=params, model_bytes=nbytes, vocab_size=int(llama.n_vocab()), facts=facts)
        return cls(llama, _gguf_tokenizer(str(source)), info, settings)

    def drafting_with(self, spec: SpeculativeSpec, drafter: Any, draft: "Engine | None") -> "LlamaCppEngine":
        """This file generating with ``drafter``'s llama.cpp draft (a second ``Llama`` on the same
        file: llama-cpp-python fixes drafting at construction); ``without_assist`` is ``self``."""
        draft_model = drafter.llamacpp_draft(spec, self, draft)
        llama = _llama(Path(self.llama.model_path), self.settings, self.info.facts["llamacpp"]["threads"], draft_model)
        evaluate = llama.eval

        def counted(tokens: Sequence[int]) -> None:  # Llama.generate calls self.eval: one target forward
            if draft_model.usage is not None:
                draft_model.usage.target_forwards += 1
            evaluate(tokens)

        llama.eval = counted
        facts = {**self.info.facts, "speculative": spec.to_dict()}
        if draft is not None:
            facts["speculative_draft_file"] = draft.info.facts.get("weights_file")
        info = dataclasses.replace(self.info, speculative=spec, facts=facts)
        return LlamaCppEngine(llama, self.tokenizer, info, self.settings, draft=draft_model, plain=self)

    def without_assist(self) -> "LlamaCppEngine":
        return self.plain if self.plain is not None else self

    def encode(self, text: str, chat: bool) -> list[int]:
        return encode_prompt(self.tokenizer, text, chat)

    def native_tokens(self, text: str) -> list[int]:
        """llama.cpp's own tokenization of ``text`` (with the file's BOS rule), to check against ``encode``."""
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def generate(self, batch: Sequence[Request], sampling: SamplingSpec) -> list[RequestTrace]:
        t_send = time.perf_counter()
        return [self._one(request, sampling, t_send) for request in batch]

    def _one(self, request: Request, sampling: SamplingSpec, t_send: float) -> RequestTrace:
        if not self.settings.prefix_reuse:
            self.llama.reset()  # no cached prefix: generate() evaluates the whole prompt
        cached = self._reusable_prefix(request.prompt_ids)
        temperature = 0.0 if sampling.greedy else sampling.temperature
        if not sampling.greedy:
            self.llama.set_seed(sampling.seed + request.index)
        eos = self.llama.token_eos()
        usage = self._count_drafting()
        t_admit = time.perf_counter()
        ids: list[int] = []
        times: list[float] = []
        try:
            for token in self.llama.generate(list(request.prompt_ids), temp=temperature, top_k=0 if sampling.greedy else 40,
                                             top_p=1.0 if sampling.greedy else sampling.top_p, min_p=0.0,
                                             repeat_penalty=1.0, reset=True):
                times.append(time.perf_counter())
                ids.append(int(token))
                if len(ids) >= request.max_new_tokens or (token == eos and not request.ignore_eos):
                    break
        except Exception as exc:  # a failed request is data (docs/architecture.md)
            return RequestTrace.failed(request, t_send, f"{type(exc).__name__}: {exc}")
        finally:
            if usage is not None:
                usage.seconds = time.perf_counter() - t_admit
                self.draft.usage = None
        return RequestTrace(request.index, t_send, tuple(times), (1,) * len(ids), len(request.prompt_ids), tuple(ids),
                            t_admit=t_admit, cached_tokens=cached)

    def _reusable_prefix(self, prompt: Sequence[int]) -> int:
        """Prompt tokens ``generate`` will take from the KV of the tokens it holds: their common prefix,
        less one where that is the whole prompt (llama-cpp-python re-evaluates a token for fresh logits)."""
        held = self.llama.input_ids[: self.llama.n_tokens]
        common = 0
        for a, b in zip(held, prompt):
            if a != b:
                break
            common += 1
        return common - 1 if common == len(prompt) and common > 0 else common

    def _count_drafting(self) -> AssistUsage | None:
        """With drafting: a fresh usage the draft adds its proposals to, and the target's ``eval``
        calls (prompt and each verify step) counted as target forwards."""
        if self.draft is None:
            return None
        usage = AssistUsage()
        self.assist_log.append(usage)
        self.draft.usage = usage
        return usage

    def lm_eval_model(self, device_name: str) -> Any:
        """lm-eval scoring this file with llama.cpp's own logits (engines/llamacpp_lm.py), closed after."""
        from pytest_inferlab.engines.llamacpp_lm import LlamaCppLM

        return contextlib.closing(LlamaCppLM(self.llama.model_path, self.tokenizer, self.info.facts["llamacpp"]["threads"]))

    def window_log_probs(self, window_ids: Sequence[Sequence[int]]) -> list[Any]:
        """llama.cpp's own log-probabilities of each window (the same token ids the reference scores)."""
        import torch

        return [torch.log_softmax(torch.from_numpy(self.logits(ids))[:-1], dim=-1) for ids in window_ids]

    def logits(self, ids: Sequence[int]) -> Any:
        """Next-token logits at every position of ``ids`` (numpy, [len(ids), vocab]) from llama.cpp's
        own forward pass, for fidelity against the reference. A context of its own that keeps every
        position's logits (the generating one keeps the last only: all of them would cost n_ctx x vocab)."""
        import numpy as np
        from llama_cpp import Llama

        scorer = Llama(model_path=self.llama.model_path, n_ctx=len(ids) + 1, n_batch=min(len(ids), 512),
                       n_threads=self.info.facts["llamacpp"]["threads"], logits_all=True, verbose=False)
        try:
            scorer.eval(list(ids))
            return np.array(scorer.scores[: len(ids)], dtype=np.float32)
        finally:
            scorer.close()

    def close(self) -> None:
        llama, self.llama = self.llama, None
        if llama is not None:
            llama.close()


def _llama(path: Path, settings: LlamaCppSettings, threads: int, draft_model: Any = None) -> Any:
    """A llama.cpp context on ``path``: ``draft_model`` makes it verify drafts (and keep every
    position's logits, which llama-cpp-python needs for that)."""
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=settings.context, n_batch=settings.batch_tokens, n_threads=threads,
                 n_threads_batch=threads, seed=0, verbose=False, draft_model=draft_model)


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("llama-cpp-python")
    except Exception:
        return None

