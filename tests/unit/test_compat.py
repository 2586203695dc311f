"""The one door to upstream private APIs: each use holds on the installed versions, every locked
version was verified, a missing member fails with the package, version and feature named, and a
continuous-batching thread that dies is raised on the caller's thread at once."""

import contextlib
import dataclasses
import re
import time
from pathlib import Path

import pytest
import torch

from pytest_inferlab import compat
from pytest_inferlab.run.batching import BatchingSpec, serve_round
from pytest_inferlab.run.batching import continuous
from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.record.packages import normalized, pins
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.run.workloads import materialize
from pytest_inferlab.specs.workloads import workloads

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pytest_inferlab"


def test_every_locked_version_of_a_package_with_private_uses_was_verified():
    locked = {**pins((ROOT / "requirements" / "lock.txt").read_text()),
              **pins((ROOT / "requirements" / "nodeps.txt").read_text()),
              **pins((ROOT / "requirements" / "lab.in").read_text())}
    for use in compat.PRIVATE_USES:
        version = locked[normalized(use.package)].split("+")[0]
        assert version in use.verified, f"{use.member}: {use.package} {version} is locked but not verified"


def test_no_module_outside_compat_touches_an_upstream_private_member():
    private = re.compile(r"\._(run_generation_loop|get_candidate_generator|compile_all_devices|modules|parameters|"
                         r"buffers|PROJECT_LOG_DIR)\b|torch\._inductor|transformers\.generation\.[a-z_]+")
    offenders = [f"{path.relative_to(ROOT)}:{number}" for path in PACKAGE.rglob("*.py") if path.name != "compat.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1) if private.search(line)]
    assert offenders == []


def test_the_private_members_exist_in_the_installed_versions():
    from transformers import CompileConfig, GenerationMixin
    from transformers.generation import ContinuousBatchingManager

    assert callable(ContinuousBatchingManager._run_generation_loop)
    assert callable(GenerationMixin._get_candidate_generator)
    assert compat.compile_on_every_device(CompileConfig())._compile_all_devices is True
    compat.compile_in_this_process()
    import torch._inductor.config as inductor

    assert inductor.compile_threads == 1


def test_a_missing_member_names_the_package_its_version_the_feature_and_what_was_verified():
    class Manager:  # a transformers whose manager has no _run_generation_loop
        pass

    with pytest.raises(compat.UpstreamAPIError) as caught:
        compat.prepare_generation_thread(Manager(), contextlib.nullcontext)
    version = compat.installed_version("transformers")
    assert str(caught.value) == (
        f"transformers {version}: continuous batching (the manager's thread must use the session's torch thread "
        "count) needs ContinuousBatchingManager._run_generation_loop, which Manager does not have (verified on "
        "transformers 5.23.0, 5.24.0); install a verified version (requirements/lock.txt pins one) or update "
        "pytest_inferlab/compat.py")


def test_the_generation_loop_keeps_its_arguments_and_runs_inside_the_context():
    seen = []

    class Manager:
        def _run_generation_loop(self, use_inference_mode):  # transformers 5.24's signature
            seen.append((use_inference_mode, torch.get_num_threads()))

    @contextlib.contextmanager
    def one_thread():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    manager = Manager()
    thread = compat.prepare_generation_thread(manager, one_thread)
    manager._run_generation_loop(use_inference_mode=True)
    assert seen == [(True, 1)] and thread.escaped is None


def test_module_view_shares_tensors_and_owns_its_tables():
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    view = compat.module_view(module)
    del view._modules["1"]
    assert len(module) == 2 and len(view) == 1 and view[0].weight is module[0].weight


def test_the_candidate_generator_is_wrapped_for_the_block_only():
    class Model:
        def _get_candidate_generator(self, *args):
            return ("built", args)

    model = Model()
    with compat.wrapped_candidate_generator(model, lambda generator: ("wrapped", generator)):
        assert model._get_candidate_generator(1) == ("wrapped", ("built", (1,)))
    assert model._get_candidate_generator(1) == ("built", (1,))


@pytest.fixture(scope="module")
def tiny():
    return load_engine("transformers", resolve_model("dummy:tiny"), CPU)


def test_a_generation_thread_that_dies_fails_the_round_at_once(tiny, monkeypatch):
    """The failure the lab once had: a loop that cannot start killed the manager's thread and every
    case waited out its budget. Now the thread's exception is raised on the caller's thread."""
    real_prepare = compat.prepare_generation_thread

    def broken_prepare(manager, context):
        @contextlib.contextmanager
        def failing():
            raise TypeError("generation_loop() got an unexpected keyword argument 'use_inference_mode'")
            yield

        return real_prepare(manager, failing)

    monkeypatch.setattr(continuous, "prepare_generation_thread", broken_prepare)
    spec = dataclasses.replace(workloads.get("short-chat"), count=2, output_tokens=4)
    requests = materialize(spec, tiny.encode, tiny.info.vocab_size)
    started = time.perf_counter()
    with pytest.raises(continuous.GenerationThreadError, match="use_inference_mode") as caught:
        serve_round(tiny, requests, BatchingSpec("continuous"), LoadSpec.closed(2), SamplingSpec(), budget_s=120)
    assert time.perf_counter() - started < 10  # not the 120 s budget
    assert isinstance(caught.value.__cause__, TypeError)
