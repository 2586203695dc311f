"""Real loading paths on a small real model: a saved folder, a hub id from the local cache,
greedy determinism and seeded sampling."""

import dataclasses
import shutil

import pytest

from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.run.runner import run_round
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.ground.trace import output_digest
from pytest_inferlab.run.workloads import materialize
from pytest_inferlab.specs.workloads import workloads


@pytest.fixture(scope="module")
def tiny():
    return load_engine("transformers", resolve_model("dummy:tiny"), CPU)


@pytest.fixture(scope="module")
def requests(tiny):
    spec = dataclasses.replace(workloads.get("short-chat"), count=3, output_tokens=12)
    return materialize(spec, tiny.encode, tiny.info.vocab_size)


@pytest.fixture(scope="module")
def saved_folder(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-folder")
    tiny.module.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return folder


def digest(engine, requests, sampling):
    return output_digest(run_round(engine, requests, 1, sampling))


def test_saved_folder_loads_and_generates_the_same_tokens(tiny, requests, saved_folder):
    engine = load_engine("transformers", resolve_model(str(saved_folder)), CPU)
    assert engine.info.model.source == "folder"
    assert engine.info.model_bytes == tiny.info.model_bytes
    assert digest(engine, requests, SamplingSpec()) == digest(tiny, requests, SamplingSpec())


def test_hub_id_loads_from_the_local_cache_offline(tiny, requests, saved_folder, tmp_path, monkeypatch):
    # The layout huggingface_hub itself writes: models--org--name/{refs/main, snapshots/<rev>/...}
    repo = tmp_path / "models--inferlab-test--tiny"
    revision = "0" * 40
    shutil.copytree(saved_folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    engine = load_engine("transformers", resolve_model("inferlab-test/tiny"), CPU)
    assert engine.info.model.source == "hub"
    assert digest(engine, requests, SamplingSpec()) == digest(tiny, requests, SamplingSpec())


def test_greedy_is_deterministic_and_sampling_is_seeded(tiny, requests):
    assert digest(tiny, requests, SamplingSpec()) == digest(tiny, requests, SamplingSpec())
    seeded = SamplingSpec(temperature=1.0, seed=3)
    assert digest(tiny, requests, seeded) == digest(tiny, requests, seeded)
    assert digest(tiny, requests, seeded) != digest(tiny, requests, dataclasses.replace(seeded, seed=4))
    assert digest(tiny, requests, seeded) != digest(tiny, requests, SamplingSpec())


def test_every_request_gets_exactly_its_output_tokens_and_a_timestamp_each(tiny, requests):
    traces = tiny.generate(requests, SamplingSpec())
    for request, trace in zip(requests, traces):
        assert trace.ok and trace.output_tokens == 12 and len(trace.chunk_times) == 12
        assert trace.t_send < trace.chunk_times[0] and list(trace.chunk_times) == sorted(trace.chunk_times)
        assert trace.input_tokens == len(request.prompt_ids)


def test_a_gguf_header_is_read_once_per_file_version_on_the_machine(tmp_path, monkeypatch):
    """gguf-py parses the embedded file in seconds; every pytest run on it asks at collection, so the
    header is kept on disk by file version: read back the same, and a damaged entry is read again."""
    from pytest_inferlab.engines import sources

    path = sources.embedded_gguf_path("smollm2-135m")
    monkeypatch.setenv("INFERLAB_CACHE_DIR", str(tmp_path))
    sources._gguf_header.cache_clear()
    header = sources.gguf_header(path)
    [saved] = (tmp_path / "gguf-headers").glob("*.json")
    assert header[0] == "MOSTLY_Q4_1" and header[3] == 8192 and header[1] > 100_000_000

    def no_file_read(path):
        raise AssertionError("read the file again")

    sources._gguf_header.cache_clear()
    with monkeypatch.context() as patch:
        patch.setattr(sources, "_read_gguf_header", no_file_read)
        assert sources.gguf_header(path) == header  # from the saved entry, in a new process's place
    saved.write_text("[1, 2")  # cut short
    sources._gguf_header.cache_clear()
    reads = []
    with monkeypatch.context() as patch:  # read again (the file's own read is timed above: 3-6 s)
        patch.setattr(sources, "_read_gguf_header", lambda path: reads.append(path) or header)
        assert sources.gguf_header(path) == header and len(reads) == 1
    assert saved.read_text().startswith('["MOSTLY_Q4_1"')  # and kept whole again
    sources._gguf_header.cache_clear()
