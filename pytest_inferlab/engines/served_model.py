"""Which model a server's requests are encoded for. A server (vLLM, llama.cpp's, anyone's) is sent
text, and the lab counts and templates that text with a tokenizer of its own: it must be the served
model's, or every prompt length, chat template and token count is another model's, silently.

The tokenizer comes from the served model (``--inferlab-server-model``, else the first model the
server lists) where that name resolves here (a folder, a GGUF file, a hub id in the local cache);
else from ``--inferlab-model`` when the user named one (they say the two are the same); else the run
stops, naming both. Where the server tokenizes (``POST /tokenize``: vLLM's and llama.cpp's servers),
a few prompts are checked against it and a difference stops the run; the check is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pytest_inferlab.engines.model_checks import ModelSourceError
from pytest_inferlab.engines.sources import check_model, resolve_model
from pytest_inferlab.specs.core import ModelSpec

SERVER_MODEL_OPTION = "--inferlab-server-model"
# Checked against the server's /tokenize: plain prose, code-ish text, and accents and symbols (where
# tokenizers of one family still differ)
PROBE_TEXTS = ("Explain what a KV cache is in one sentence.", "def f(x):\n    return x ** 2  # square",
               "Résumé: naïve café, 42 tokens/s — ça va?")


class ServedModelError(ValueError):
    """The server's model and the lab's tokenizer cannot be matched; the message names both."""


@dataclass(frozen=True, slots=True)
class ServedModel:
    """The name requests carry (``served``) and the spec whose tokenizer encodes them."""

    served: str
    tokenizer_model: ModelSpec
    tokenizer_from: str  # "the served model" or the option that named it


def served_model(url: str, listed: Sequence[str], server_model: str | None, model: str, model_given: bool,
                 seed: int = 0) -> ServedModel:
    """The served name and the model whose tokenizer encodes its requests (see the module)."""
    served = server_model or (listed[0] if listed else None)
    if not served:
        raise ServedModelError(f"{url} lists no model at /v1/models: pass {SERVER_MODEL_OPTION}=NAME (the name it "
                               "serves: a folder or a hub id in the local cache here)")
    try:
        spec = resolve_model(served, seed=seed, given_by="")
        check_model(spec)  # a hub id must be in the local cache, a folder must hold a model
        return ServedModel(served, spec, "the served model")
    except ModelSourceError as exc:
        if model_given:
            return ServedModel(served, resolve_model(model, seed=seed), "--inferlab-model")
        raise ServedModelError(
            f"the server at {url} serves {served!r}, which is not a folder, GGUF file or cached hub id here ({exc}); "
            f"its requests would be encoded with {model!r}'s tokenizer and chat template. Pass "
            f"{SERVER_MODEL_OPTION}=<the served model's folder or cached hub id>, or --inferlab-model=<the same "
            "model> to say which tokenizer is the server's") from None


def tokenize_check(post: Callable[[str, dict[str, Any]], tuple[int, Any]], served: ServedModel, tokenizer: Any,
                   texts: Sequence[str] = PROBE_TEXTS) -> dict[str, Any]:
    """Compare the server's ``/tokenize`` with ``tokenizer`` on ``texts``;
    ``post(path, body) -> (status, json)``. vLLM reads ``prompt`` and adds special tokens by default,
    llama.cpp's server reads ``content`` and adds none: either count matches. A difference raises
    ServedModelError; a server without the endpoint is recorded as not checked."""
    checked = 0
    for text in texts:
        status, answer = post("/tokenize", {"model": served.served, "prompt": text, "content": text})
        tokens = answer.get("tokens") if status == 200 and isinstance(answer, dict) else None
        if not isinstance(tokens, list):
            return {"checked": checked, "why": f"the server has no usable /tokenize (HTTP {status})"}
        ids = [t if isinstance(t, int) else t.get("id") for t in tokens]  # llama.cpp's with_pieces form
        ours = {tuple(tokenizer(text, add_special_tokens=special)["input_ids"]) for special in (True, False)}
        if tuple(ids) not in ours:
            raise ServedModelError(
                f"the server's tokenizer is not {served.tokenizer_model.name!r}'s (from {served.tokenizer_from}): "
                f"{text[:40]!r} is {len(ids)} tokens there ({ids[:8]}...), {min(map(len, ours))} here. Pass "
                f"{SERVER_MODEL_OPTION}=<the served model's folder or cached hub id> so requests are encoded as "
                "the server encodes them")
        checked += 1
    return {"checked": checked, "agreed": checked}
