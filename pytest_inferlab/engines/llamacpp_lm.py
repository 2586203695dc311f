"""lm-eval on llama.cpp: a GGUF rung scored by llama.cpp's own forward pass.

lm-eval's ``TemplateLM`` does the task-side work (context/continuation split, rolling windows);
this adapter answers its two scoring questions from llama.cpp logits: the log-likelihood of a
continuation (and whether it is the greedy one) and the rolling log-likelihood of a text. Text is
tokenized by the same tokenizer and rules as lm-eval's HF wrapper on the transformers side (no
special tokens added), so a rung's accuracy and its fp32 reference's are scored on the same tokens.
``generate_until`` tasks are not supported here: the shipped tasks do not need generation.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

MAX_LENGTH = 1024  # tokens per scored window (the shipped tasks' longest item is well below)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class LlamaCppLM(TemplateLM):
    """lm-eval's model interface over a llama.cpp scorer (a ``Llama`` that keeps every position's logits)."""

    def __init__(self, model_path: str, tokenizer: Any, threads: int, max_length: int = MAX_LENGTH) -> None:
        super().__init__()
        from llama_cpp import Llama

        self.tokenizer, self.max_length = tokenizer, max_length
        self.scorer = Llama(model_path=model_path, n_ctx=max_length + 1, n_batch=512, n_threads=threads,
                            n_threads_batch=threads, logits_all=True, verbose=False)

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return self.tokenizer(string, add_special_tokens=bool(add_special_tokens))["input_ids"]

    def log_probs(self, ids: Sequence[int]) -> np.ndarray:
        """Next-token log-probabilities after each of ``ids`` ([len(ids), vocab])."""
        self.scorer.reset()
        self.scorer.eval(list(ids))
        return log_softmax(np.array(self.scorer.scores[: len(ids)], dtype=np.float64))

    def _loglikelihood_tokens(self, requests: list[tuple[Any, list[int], list[int]]], **kwargs: Any,
                              ) -> list[tuple[float, bool]]:
        results = []
        for _key, context, continuation in requests:
            ids = (list(context) + list(continuation))[-(self.max_length + 1):]
            scored = self.log_probs(ids[:-1])[-len(continuation):]
            rows = np.arange(len(continuation))
            results.append((float(scored[rows, continuation].sum()),
                            bool((scored.argmax(axis=-1) == np.asarray(continuation)).all())))
        return results

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        out = []
        for request in requests:
            (text,) = request.args
            windows = map(make_disjoint_window, get_rolling_token_windows(
                token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            out.append(sum(ll for ll, _ in self._loglikelihood_tokens([(None, c, t) for c, t in windows])))
        return out

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        raise NotImplementedError("lm-eval generation tasks on llama.cpp rungs are not supported; the shipped tasks "
                                  "(inferlab_mc, inferlab_ppl) score log-likelihoods")

    def close(self) -> None:
        self.scorer.close()
