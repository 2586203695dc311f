"""pytest11 entry point: options, fixtures and hook implementations. Imports no torch."""

from __future__ import annotations

import pytest

from pytest_inferlab.plugin import hookspec
from pytest_inferlab.device import CPU, cuda_device
from pytest_inferlab.plugin.fixtures import (batching, inferlab_device, inferlab_session, kv_cache, kv_model, lab, load,  # noqa: F401
                       inferlab_server, model, parallel, quantization, quantized_model, server_model, speculative,
                       speculative_model, tp_model, vllm_model, workload, workload_overrides)
from pytest_inferlab.plugin.options import MODEL, add_options, given, read_settings
from pytest_inferlab.specs.labels import spec_label
from pytest_inferlab.judge.policy import policies_for
from pytest_inferlab.plugin.session import SESSION_KEY, LabSession, XdistHooks
from pytest_inferlab.engines.sources import ModelSourceError, check_model, resolve_model


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--inferlab-ab=REV: this pytest run becomes an A/B run (pytest_inferlab/ab/run.py) of the same
    arguments, for REV and the working tree in lock-step; its exit status is the A/B's."""
    revision = config.getoption("inferlab_ab")
    if revision is None:
        return None
    from pathlib import Path

    from pytest_inferlab.ab.run import ABRequest, run_ab, split_args

    settings = read_settings(config)
    request = ABRequest(revision, split_args(config.invocation_params.args), Path(config.invocation_params.dir),
                        settings.results, alpha=settings.alpha, tolerance=settings.tolerance)
    return run_ab(request)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "inferlab(rounds=N, warmup=N, tolerance={metric: fraction}): per-test settings of pytest-inferlab")
    settings = read_settings(config)
    device = CPU
    if settings.gpu is not None:
        try:
            device = cuda_device(settings.gpu)
        except LookupError as exc:
            raise pytest.UsageError(str(exc)) from None
    if given(config, MODEL):
        _check_model(settings.model)
    try:
        policies_for([], settings.tolerance, {})  # unknown metric names are usage errors, now
    except ValueError as exc:
        raise pytest.UsageError(f"--inferlab-tolerance / inferlab_tolerance: {exc}") from None
    if settings.server_url is not None:
        from pytest_inferlab.engines.openai_engine import ServerUnreachable, probe
        from pytest_inferlab.engines.served_model import ServedModelError, served_model

        try:
            listed = probe(settings.server_url)
            served_model(settings.server_url, listed, settings.server_model, settings.model, given(config, MODEL),
                         settings.seed)  # the tokenizer its requests are encoded with, named before any case runs
        except ServerUnreachable as exc:
            raise pytest.UsageError(f"--inferlab-server-url: {exc}") from None
        except ServedModelError as exc:
            raise pytest.UsageError(f"--inferlab-server-url={settings.server_url}: {exc}") from None
    session = LabSession(config, settings, device)
    config.stash[SESSION_KEY] = session
    session.register()
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(XdistHooks(session.run_id), "inferlab-xdist")


def _check_model(name: str) -> None:
    """A model named explicitly must resolve now, before any case runs (loading stays lazy)."""
    try:
        spec = resolve_model(name)  # its errors name the option already
    except ModelSourceError as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        check_model(spec)
    except ModelSourceError as exc:
        raise pytest.UsageError(f"{MODEL}={name}: {exc}") from None


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Readable test ids for spec parameters (``paged-page_size=16``, ``closed:4``, ``tp2-pp2``)
    where the suite gives none (pytest would say ``kv_cache0``); explicit ``ids=`` still win. A test
    id keys its baseline: a case whose id this changed starts a new history (pass ``ids=`` to keep
    the old one)."""
    return spec_label(val)


def pytest_report_header(config: pytest.Config) -> str | None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return None
    s = session.settings
    where = session.device.torch_name
    return (f"inferlab: model={s.model} device={where} rounds={s.rounds} warmup={s.warmup} "
            f"threads={s.threads or 'default'} results={s.results}")

