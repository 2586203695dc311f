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
