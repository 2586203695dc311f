"""A server's requests are encoded with the served model's tokenizer (engines/served_model.py)."""

import pytest

from pytest_inferlab.engines.served_model import PROBE_TEXTS, ServedModelError, served_model, tokenize_check
from pytest_inferlab.engines.sources import load_tokenizer, resolve_model

URL = "http://127.0.0.1:8000"


def test_the_served_model_gives_the_tokenizer_where_it_resolves_here():
    match = served_model(URL, ["dummy:tiny"], None, "smollm2-135m", model_given=False)
    assert match.served == "dummy:tiny" and match.tokenizer_model == resolve_model("dummy:tiny")
    assert match.tokenizer_from == "the served model"
    named = served_model(URL, ["other"], "dummy:tiny", "smollm2-135m", model_given=False)  # the option wins
    assert named.served == "dummy:tiny"


def test_a_served_model_unknown_here_needs_the_user_to_name_the_tokenizer():
    match = served_model(URL, ["org/served-elsewhere"], None, "dummy:tiny", model_given=True)
    assert match.served == "org/served-elsewhere" and match.tokenizer_model.name == "dummy:tiny"
    assert match.tokenizer_from == "--inferlab-model"
    with pytest.raises(ServedModelError, match="serves 'org/served-elsewhere'.*'smollm2-135m''s tokenizer.*"
                                               "--inferlab-server-model="):
        served_model(URL, ["org/served-elsewhere"], None, "smollm2-135m", model_given=False)
    with pytest.raises(ServedModelError, match="lists no model at /v1/models: pass --inferlab-server-model"):
        served_model(URL, [], None, "smollm2-135m", model_given=False)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model("dummy:tiny"))


def test_the_servers_own_tokenization_is_compared(tokenizer):
    match = served_model(URL, ["dummy:tiny"], None, "dummy:tiny", model_given=True)
    sent = []

    def vllm(path, body):  # vLLM: special tokens added
        sent.append((path, body["prompt"]))
        return 200, {"tokens": tokenizer(body["prompt"])["input_ids"], "count": 1}

    assert tokenize_check(vllm, match, tokenizer) == {"checked": 3, "agreed": 3}
    assert sent == [("/tokenize", text) for text in PROBE_TEXTS]

    def llamacpp(path, body):  # llama.cpp's server: none added, pieces beside the ids
        ids = tokenizer(body["content"], add_special_tokens=False)["input_ids"]
        return 200, {"tokens": [{"id": i, "piece": "?"} for i in ids]}

    assert tokenize_check(llamacpp, match, tokenizer)["agreed"] == 3
    assert tokenize_check(lambda path, body: (404, None), match, tokenizer) == {
        "checked": 0, "why": "the server has no usable /tokenize (HTTP 404)"}

    def another_model(path, body):
        return 200, {"tokens": [7] * 5}

    with pytest.raises(ServedModelError, match="the server's tokenizer is not 'dummy:tiny''s"):
        tokenize_check(another_model, match, tokenizer)
