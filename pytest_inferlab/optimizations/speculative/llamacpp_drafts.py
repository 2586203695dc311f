"""Speculative decoding on llama.cpp: the draft models llama-cpp-python's ``Llama(draft_model=)`` takes.

llama-cpp-python verifies drafts itself (``Llama.generate``: the drafted tokens are evaluated in
one batch, each position sampled, the first mismatch truncates the KV cache), so greedy output is
the target's own token for token. It ships prompt lookup (``LlamaPromptLookupDecoding``); a draft
*model* is this module's ``ModelDraft``: a lower GGUF rung of the same model (same vocabulary)
that greedily drafts ``num_tokens`` tokens, keeping its own KV cache across steps (llama.cpp's
prefix match drops what the target rejected). Both count what they propose and the seconds they
spend into an ``AssistUsage``, so the records carry the same acceptance and draft-cost figures as
on transformers.
"""

from __future__ import annotations

import time
from typing import Any

from llama_cpp.llama_speculative import LlamaDraftModel, LlamaPromptLookupDecoding

from pytest_inferlab.ground.trace import AssistUsage


class CountedDraft(LlamaDraftModel):
    """A draft model whose proposals and time go to ``usage`` (set per generate call)."""

    usage: AssistUsage | None = None

    def propose(self, input_ids: Any) -> Any:
        raise NotImplementedError

    def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
        started = time.perf_counter()
        drafted = self.propose(input_ids)
        if self.usage is not None:
            self.usage.draft_s += time.perf_counter() - started
            self.usage.proposed += len(drafted)
        return drafted


class PromptLookupDraft(CountedDraft):
    """llama-cpp-python's prompt lookup: the continuation of the last matching n-gram of the context."""

    def __init__(self, num_tokens: int, max_ngram: int) -> None:
        self.lookup = LlamaPromptLookupDecoding(max_ngram_size=max_ngram, num_pred_tokens=num_tokens)

    def propose(self, input_ids: Any) -> Any:
        return self.lookup(input_ids)


class ModelDraft(CountedDraft):
    """A smaller GGUF (a lower rung of the same model) drafting ``num_tokens`` greedy tokens."""

    def __init__(self, llama: Any, num_tokens: int) -> None:
        self.llama, self.num_tokens = llama, num_tokens

    def propose(self, input_ids: Any) -> Any:
        import numpy as np

        drafted: list[int] = []
        room = self.llama.n_ctx() - len(input_ids) - 1
        if room <= 0:
            return np.array([], dtype=np.intc)
        # reset=True keeps the longest common prefix of the draft's cache and input_ids (llama.cpp's
        # prefix match), so each step evaluates only what changed since the last one
        for token in self.llama.generate(list(int(t) for t in input_ids), temp=0.0, top_k=1, top_p=1.0, min_p=0.0,
                                         repeat_penalty=1.0, reset=True):
            drafted.append(int(token))
            if len(drafted) >= min(self.num_tokens, room):
                break
        return np.array(drafted, dtype=np.intc)
