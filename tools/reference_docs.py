"""Write the reference pages of the documentation site from the code they describe, the one source
of their facts: docs/reference/options.md (plugin/options.py), fixtures.md (plugin/fixtures.py),
methods.md (the registries), commands.md (the ``inferlab`` command's parser) and metrics.md (the
metric catalog, tools/metrics_doc.py).

``python tools/reference_docs.py``; tests/unit/test_docs.py fails when a page is stale.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
GENERATED = "Generated from the code by `python tools/reference_docs.py`; do not edit."


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def options_page() -> str:
    from pytest_inferlab.plugin.options import OPTIONS

    lines = ["# Options", "", GENERATED, "",
             "Every option is also an ini key of `[tool.pytest.ini_options]` (or `pytest.ini`); the command line",
             "wins over the ini file, the ini file over the default. A bad value is a usage error (exit code 4)",
             "naming the option or ini key and the values it accepts. `-p no:inferlab` disables the plugin.", "",
             "| option | ini key | default | meaning |", "|---|---|---|---|"]
    for option in OPTIONS:
        if option.internal:
            continue  # set by the lab for its own child processes
        flag = f"{option.flag}, --no-{option.flag.lstrip('-')}" if option.switch else f"{option.flag}=VALUE"
        default = "off" if option.switch and not option.default else ("-" if option.default is None else option.default)
        lines.append(f"| `{flag}` | `{option.ini}` | {_cell(default)} | {_cell(option.help)} |")
    return "\n".join(lines) + "\n"


def fixtures_page() -> str:
    import pytest_inferlab.plugin as plugin
    from pytest_inferlab.plugin import fixtures

    lines = ["# Fixtures", "", GENERATED, "",
             "The suites' vocabulary. Parametrize the axes indirectly (`indirect=True`) with a name or a spec;",
             "stacked `parametrize` decorators compose a cross product, and expensive objects (loaded models,",
             "quantized variants, servers) are built once per session. See [Writing suites](../suites.md).", ""]
    for name in sorted(n for n in dir(plugin) if hasattr(getattr(fixtures, n, None), "_get_wrapped_function")):
        definition = getattr(fixtures, name)
        function = definition._get_wrapped_function()
        scope = definition._fixture_function_marker.scope
        parameters = ", ".join(p for p in inspect.signature(function).parameters if p != "request")
        lines += [f"## `{name}`", "", f"Scope: {scope}. Depends on: {parameters or 'nothing'}.", "",
                  inspect.cleandoc(function.__doc__ or "(no description)"), ""]
    return "\n".join(lines)


def _registry_rows(registry: Any, describe: Callable[[Any], str]) -> list[str]:
    rows = []
    for name in registry.names():
        target = registry.get(name)
        kind = target.__qualname__ if inspect.isclass(target) or inspect.isfunction(target) else type(target).__qualname__
        rows.append(f"| `{name}` | `{kind}` | {_cell(describe(target))} |")
    return rows


def _settings(target: Any) -> str:
    if dataclasses.is_dataclass(target) and not isinstance(target, type):
        fields = {f.name: getattr(target, f.name) for f in dataclasses.fields(target)}
        return ", ".join(f"{k}={v!r}" for k, v in fields.items() if v not in (None, {}, (), False) and not callable(v))
    return ""


def methods_page() -> str:
    from pytest_inferlab.engines.sources import model_sources
    from pytest_inferlab.optimizations.kv import kv_caches
    from pytest_inferlab.optimizations.quant import quant_methods
    from pytest_inferlab.optimizations.speculative import drafters
    from pytest_inferlab.run.batching import batchers
    from pytest_inferlab.specs.workloads import workloads
    from pytest_inferlab.specs.load import arrival_processes

    def workload(spec: Any) -> str:
        if getattr(spec, "trace", None) is not None:
            return f"trace `{spec.trace.source}`, its first {spec.count} requests, their lengths and times"
        tokens = (f"{spec.input_lengths.label} in" if getattr(spec, "input_lengths", None) else
                  f"{spec.input_tokens} in" if getattr(spec, "input_tokens", None) else "prompt lengths of the set")
        out = spec.output_lengths.label if getattr(spec, "output_lengths", None) else spec.output_tokens
        shape = "".join(f", {what} {value.label}" for what, value in (("prefix", getattr(spec, "prefix", None)),
                                                                       ("sessions", getattr(spec, "sessions", None)))
                        if value is not None)
        return f"prompts `{spec.prompts}`, {spec.count} requests, {tokens}, {out} out{shape}"

    def arrival(process: Any) -> str:
        schedule = f"schedule `{process.schedule.__name__}`" if process.schedule else "no schedule: arrivals follow completions"
        return f"form `{process.form}`; {schedule}" + ("; seeded" if process.seeded else "")

    sections = [
        ("Quantization methods", "`quantization` parameter, `quantized_model`", quant_methods, _settings, "quantization.md"),
        ("KV-cache configurations", "`kv_cache` parameter, `kv_model`", kv_caches, _settings, "kv-cache.md"),
        ("Speculative methods", "`speculative` parameter, `speculative_model`", drafters, _settings, "speculative.md"),
        ("Batching engines", "`batching` parameter, `lab.measure(..., batching=)`", batchers, lambda t: "", "batching.md"),
        ("Arrival processes", "`load` parameter (`closed:N` is the closed loop)", arrival_processes, arrival,
         "batching.md"),
        ("Workloads", "`workload` parameter", workloads, workload, "suites.md#workloads"),
        ("Model sources", "`--inferlab-model`, `model` parameter", model_sources, lambda t: "", "suites.md#models"),
    ]
    lines = ["# Methods", "", GENERATED, "",
             "Every axis is a registry: a name resolves to the object below, an unknown name is an error that",
             "lists the known ones, and a project adds its own entries (decorator, `module:attr` string or entry",
             "point `pytest_inferlab.<axis>`). What each method does and what it costs: the linked pages.", ""]
    for title, used, registry, describe, page in sections:
        lines += [f"## {title}", "", f"Used through {used}; explained in [{page.split('#')[0]}](../{page}).", "",
                  "| name | implementation | settings |", "|---|---|---|", *_registry_rows(registry, describe), ""]
    return "\n".join(lines)


def commands_page() -> str:
    import os

    from pytest_inferlab.cli import build_parser

    parser = build_parser()
    width, os.environ["COLUMNS"] = os.environ.get("COLUMNS"), "100"  # argparse wraps at the terminal's width
    lines = ["# Commands", "", GENERATED, "",
             "`inferlab` works on records made earlier (no suite is re-run, except by `inferlab ab`); exit code",
             "2 is bad input, with the file or option named and nothing written.", ""]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        sub.prog = f"inferlab {name}"
        help_text = sub.format_help().replace("usage: ", "", 1)
        lines += [f"## `inferlab {name}`", "", "```text", help_text.rstrip(), "```", ""]
    if width is None:
        del os.environ["COLUMNS"]
    else:
        os.environ["COLUMNS"] = width
    return "\n".join(lines)


def _doc(obj: Any) -> str:
    return inspect.cleandoc(inspect.getdoc(obj) or "")


def _members(cls: type, names: list[str]) -> list[str]:
    lines = []
    for name in names:
        member = inspect.getattr_static(cls, name)
        if isinstance(member, property):
            lines += [f"### `{cls.__name__}.{name}`", "", _doc(member), ""]
        else:
            signature = str(inspect.signature(getattr(cls, name))).replace("(self, ", "(").replace("(self)", "()")
            lines += [f"### `{cls.__name__}.{name}{signature}`", "", _doc(getattr(cls, name)), ""]
    return lines


def api_page() -> str:
    """The ``lab`` fixture's class and the record it returns and writes, from their docstrings."""
    from pytest_inferlab.measure.metrics import Measurement
    from pytest_inferlab.plugin.lab import Lab
    from pytest_inferlab.record import run_folder
    from pytest_inferlab.record.record import Record

    lines = ["# The Lab and record API", "", GENERATED, "",
             "A suite measures through the `lab` fixture (`pytest_inferlab.plugin.lab.Lab`); each call writes one",
             "record to the run folder and returns it (`pytest_inferlab.record.record.Record`). Records made",
             "earlier are read back with `pytest_inferlab.record.run_folder` (the commands of `inferlab` do).", "",
             "## Lab", "", _doc(Lab), ""]
    lines += _members(Lab, ["measure", "sweep", "measure_overhead", "rounds", "warmup"])
    lines += ["## Record", "", _doc(Record) or "One case's record, as written to its JSON file.", "",
              "| field | type |", "|---|---|"]
    lines += [f"| `{f.name}` | `{_cell(f.type)}` |" for f in dataclasses.fields(Record)]
    lines += [""] + _members(Record, ["__getitem__", "__contains__", "exactness", "to_json"])
    lines += ["## Measurement", "", _doc(Measurement), "", "| field | type |", "|---|---|"]
    lines += [f"| `{f.name}` | `{_cell(f.type)}` |" for f in dataclasses.fields(Measurement)]
    lines += ["", "## Reading runs back", ""]
    for function in (run_folder.list_runs, run_folder.resolve_run, run_folder.load_run):
        lines += [f"### `run_folder.{function.__name__}{inspect.signature(function)}`", "", _doc(function), ""]
    lines += [f"`RunFolder`: {_doc(run_folder.RunFolder)} `RunFolderError`: {_doc(run_folder.RunFolderError)}", ""]
    return "\n".join(lines)


def pages() -> dict[Path, str]:
    sys.path.insert(0, str(ROOT / "tools"))
    from metrics_doc import render as metrics_page

    return {REFERENCE / "options.md": options_page(), REFERENCE / "fixtures.md": fixtures_page(),
            REFERENCE / "methods.md": methods_page(), REFERENCE / "commands.md": commands_page(),
            REFERENCE / "metrics.md": metrics_page(), REFERENCE / "api.md": api_page()}


if __name__ == "__main__":
    for path, text in pages().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
