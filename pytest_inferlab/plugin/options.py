"""Option names, converters and the resolved settings of a session.

Every option is also an ini key (``--inferlab-rounds`` <-> ``inferlab_rounds``); the command line
wins over the ini file, the ini file over the default. Bad values are usage errors naming the
option (or ini key) and the accepted values.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

GPU = "--inferlab-gpu"
MODEL = "--inferlab-model"
THREADS = "--inferlab-threads"
ROUNDS = "--inferlab-rounds"
PRECISION = "--inferlab-precision"
MAX_ROUNDS = "--inferlab-max-rounds"
ROUND_BUDGET = "--inferlab-round-budget"
WARMUP = "--inferlab-warmup"
SEED = "--inferlab-seed"
RESULTS = "--inferlab-results"
BASELINES = "--inferlab-baselines"
SAVE_BASELINE = "--inferlab-save-baseline"
NO_GATE = "--inferlab-no-gate"
ALPHA = "--inferlab-alpha"
TOLERANCE = "--inferlab-tolerance"
MAX_INTERFERENCE = "--inferlab-max-interference"
HOST_REF = "--inferlab-host-ref"
CONFIRM = "--inferlab-confirm"
EVAL_LIMIT = "--inferlab-eval-limit"
ASV = "--inferlab-asv"
SLO_OPTION = "--inferlab-slo"
SLO_ATTAINMENT = "--inferlab-slo-attainment"
LOAD_BUDGET = "--inferlab-load-budget"
SHARD = "--inferlab-shard"
SERVER_URL = "--inferlab-server-url"
SERVER_MODEL = "--inferlab-server-model"
SERVER_KIND = "--inferlab-server"
LOAD_PROCESSES = "--inferlab-load-processes"
RAY_ADDRESS = "--inferlab-ray-address"
SHARD_DURATIONS = "--inferlab-shard-durations"
FRESH_PROCESS = "--inferlab-fresh-process"
AB = "--inferlab-ab"
AB_TURNS = "--inferlab-ab-turns"
AB_SIDE = "--inferlab-ab-side"
TUNE_TRIAL = "--inferlab-tune-trial"
PROMPTS = "--inferlab-prompts"
PROMPT_COLUMN = "--inferlab-prompt-column"
REQUESTS = "--inferlab-requests"
INPUT_TOKENS = "--inferlab-input-tokens"
OUTPUT_TOKENS = "--inferlab-output-tokens"


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected {what}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} is out of range; expected {what}")
    return value


def _ini_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; expected true or false")


def parse_device_index(text: str) -> int:
    return _integer(text, 0, "a CUDA device index >= 0 (e.g. 0)")


def parse_positive_int(text: str) -> int:
    return _integer(text, 1, "an integer >= 1")


AUTO = "auto"


def parse_rounds(text: str) -> int | str:
    """``auto`` (adaptive: judge/sequential.py) or a fixed count >= 1."""
    if str(text).strip().lower() == AUTO:
        return AUTO
    return _integer(text, 1, "an integer >= 1, or auto (rounds until the interval is precise or decides)")


def parse_non_negative_int(text: str) -> int:
    return _integer(text, 0, "an integer >= 0")


def parse_server_kind(text: str) -> str:
    from pytest_inferlab.engines.local_server import server_kinds
    from pytest_inferlab.registry import UnknownNameError

    name = str(text).strip()
    try:
        server_kinds.get(name)
    except UnknownNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def parse_seed(text: str) -> int:
    return _integer(text, 0, "an integer seed >= 0")


def parse_probability(text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a fraction in (0, 1)") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is out of range; expected a fraction in (0, 1)")
    return value


HOST_REFS = ("gemv", "none")


def parse_host_ref(text: str) -> str:
    value = str(text).strip().lower()
    if value not in HOST_REFS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a host-speed reference; expected one of {', '.join(HOST_REFS)}")
    return value


def parse_tolerance_list(text: str) -> dict[str, float]:
    from pytest_inferlab.judge.policy import parse_tolerances

    try:
        return parse_tolerances(str(text), "tolerances")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_slo(text: str) -> Any:
    from pytest_inferlab.specs.slo import SLO

    try:
        return SLO.parse(str(text), "SLO")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_seconds(text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected seconds > 0") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is out of range; expected seconds > 0")
    return value


def parse_shard_option(text: str) -> Any:
    from pytest_inferlab.plugin.shard import parse_shard

    try:
        return parse_shard(str(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_revision(text: str) -> str:
    if not str(text).strip() or str(text).startswith("-"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a git revision (e.g. main, HEAD~1, a commit)")
    return str(text).strip()


def parse_side(text: str) -> str:
    if text not in ("base", "candidate"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected base or candidate")
    return text


def parse_model(text: str) -> str:
    if not str(text).strip():
        raise argparse.ArgumentTypeError("empty model name; expected an alias, dummy:<preset>, a path or a hub id")
    return str(text).strip()


@dataclass(frozen=True, slots=True)
class Option:
    flag: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    switch: bool = False  # a flag without a value (ini: true/false); --no-<flag> turns an ini true off
    internal: bool = False  # set by the lab for its own child processes: hidden from --help and the reference

    @property
    def ini(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS = (
    Option(GPU, parse_device_index, None, "run on CUDA device N (default: CPU). A missing device is an error."),
    Option(MODEL, parse_model, "smollm2-135m",
           "model: embedded alias, dummy:<preset>, local folder, .gguf file or cached hub id (default: smollm2-135m)"),
    Option(PROMPTS, str, None,
           "your prompts for every text workload: a JSONL file (text, prompt, chat messages or ShareGPT "
           "conversations per line) or dataset:NAME[:SPLIT] from the local Hugging Face cache. Beats the suites' "
           "workload_overrides, which beat the workload's defaults"),
    Option(PROMPT_COLUMN, str, None, "the column of --inferlab-prompts=dataset:... holding the prompts (default: text)"),
    Option(REQUESTS, parse_positive_int, None, "requests per round for every workload (beats the suites' sizes)"),
    Option(INPUT_TOKENS, parse_positive_int, None,
           "prompt tokens: a cap for text prompts (their tail is kept), the mean for synthetic ones (beats the suites')"),
    Option(OUTPUT_TOKENS, parse_positive_int, None, "new tokens per request for every workload (beats the suites')"),
    Option(THREADS, parse_positive_int, None, "CPU threads for torch (default: torch's choice); recorded"),
    Option(ROUNDS, parse_rounds, AUTO,
           "timed rounds per case: auto (default: until the case's interval is within --inferlab-precision, or "
           "decides, or --inferlab-max-rounds / --inferlab-round-budget is reached) or a fixed count N. Given here, it "
           "beats a test's marker"),
    Option(PRECISION, parse_probability, 0.05,
           "adaptive rounds stop once the case's interval is within +-this fraction (default: 0.05)"),
    Option(MAX_ROUNDS, parse_positive_int, 10, "adaptive rounds: at most this many timed rounds per case (default: 10)"),
    Option(ROUND_BUDGET, parse_seconds, 90.0,
           "adaptive rounds: no new round once the timed rounds have taken this many seconds (default: 90)"),
    Option(WARMUP, parse_non_negative_int, 1, "warm-up rounds per case, not measured (default: 1)"),
    Option(SEED, parse_seed, 0, "seed for sampling and synthetic prompts (default: 0)"),
    Option(RESULTS, str, ".inferlab", "directory for records (default: .inferlab)"),
    Option(BASELINES, str, "baselines", "baselines folder, one sub-folder per machine fingerprint (default: baselines)"),
    Option(SAVE_BASELINE, _ini_bool, False, "append this run to the baselines (verdicts are reported, never gate)", True),
    Option(NO_GATE, _ini_bool, False, "report verdicts without failing tests on regressions", True),
    Option(ALPHA, parse_probability, 0.05, "false-alarm budget of the whole run, split over its series (default: 0.05)"),
    Option(TOLERANCE, parse_tolerance_list, {}, "tolerances per metric, e.g. 'tpot_ms=0.03 ttft_ms=0.2'"),
    Option(MAX_INTERFERENCE, parse_probability, 0.10,
           "share of the CPU other processes may use during a case before it is invalid (default: 0.10)"),
    Option(HOST_REF, parse_host_ref, "gemv",
           "host-speed reference timed around each CPU case; timings are judged in its units (gemv|none; default gemv)"),
    Option(CONFIRM, parse_non_negative_int, 1,
           "re-measure a case with a timing regression N times; it gates only if every re-measurement regresses (default: 1)"),
    Option(EVAL_LIMIT, parse_positive_int, None,
           "at most N items per lm-eval task, for quick runs (default: every item); recorded with the scores"),
    Option(ASV, str, None, "after the run, write asv results for its records into DIR (e.g. .asv/results)"),
    Option(SLO_OPTION, parse_slo, None,
           "SLOs for goodput and rate sweeps, e.g. 'ttft_ms=2000 tpot_ms=150' (a test's marker slo={...} wins)"),
    Option(SLO_ATTAINMENT, parse_probability, 0.9,
           "share of requests that must meet the SLOs for a swept rate to count as sustained (default: 0.9)"),
    Option(LOAD_BUDGET, parse_seconds, 120.0,
           "seconds one round under an arrival process (or one whole rate sweep x 3) may take; requests not served "
           "by then fail as saturated (default: 120)"),
    Option(SERVER_URL, str, None,
           "benchmark the OpenAI-compatible server at URL (e.g. vLLM's, http://127.0.0.1:8000) in server_model "
           "cases; nothing is started. Unreachable: a usage error before any case runs"),
    Option(SERVER_KIND, parse_server_kind, "transformers",
           "the server server_model cases start on 127.0.0.1: transformers (transformers serve) or llamacpp "
           "(llama-cpp-python's server on the model's GGUF file); default: transformers"),
    Option(SERVER_MODEL, str, None,
           "the model name to request from --inferlab-server-url (default: the first the server lists at "
           "/v1/models, else --inferlab-model)"),
    Option(LOAD_PROCESSES, parse_positive_int, 1,
           "load-generator processes that share each server_model round, where one process cannot keep the "
           "schedule (a case says so: its client_lag_ms beyond the lab's bound); default: 1"),
    Option(RAY_ADDRESS, str, None,
           "run vllm_model cases on vLLM's Ray executor at this address (multi-node tensor/pipeline parallel)"),
    Option(SHARD, parse_shard_option, None,
           "run shard I of N (e.g. 2/4): a deterministic, cost-balanced share of the cases; merge the shards' "
           "records with `inferlab merge-runs`"),
    Option(SHARD_DURATIONS, str, None,
           "a run folder of an earlier full run whose case durations balance the shards (default: equal costs)"),
    Option(FRESH_PROCESS, _ini_bool, False,
           "measure every case in a new Python process (cold-process figures: nothing an earlier case loaded, "
           "built or imported is in its process); slower: each case loads its model again", True),
    Option(AB, parse_revision, None,
           "A/B against revision REV: run the selected cases for REV (a git worktree) and for the working tree "
           "in lock-step, round by round, and judge the paired differences (as `inferlab ab REV`)"),
    Option(AB_TURNS, str, None, "internal to A/B runs: the coordinator's socket this side takes its turns from",
           internal=True),
    Option(AB_SIDE, parse_side, None, "internal to A/B runs: which side this process measures (base|candidate)",
           internal=True),
    Option(TUNE_TRIAL, str, None, "internal to inferlab tune: the trial's plan (a JSON file) its suite measures",
           internal=True),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("inferlab", "LLM inference measurements (pytest-inferlab)")
    for option in OPTIONS:
        shown = argparse.SUPPRESS if option.internal else option.help
        if option.switch:  # --flag / --no-flag: the command line can turn off what the ini file turned on
            group.addoption(option.flag, dest=option.dest, action=argparse.BooleanOptionalAction, default=None,
                            help=f"{option.help} (--no-{option.flag.lstrip('-')}: off, whatever the ini file says)")
        else:
            group.addoption(option.flag, dest=option.dest, type=option.parse, default=None, help=shown)
        if not option.internal:
            parser.addini(option.ini, help=f"default for {option.flag}: {option.help}", default=None)


@dataclass(frozen=True, slots=True)
class Settings:
    gpu: int | None
    model: str
    threads: int | None
    rounds: int | str  # a count, or "auto"
    precision: float
    max_rounds: int
    round_budget: float
    warmup: int
    seed: int
    results: Path
    baselines: Path
    save_baseline: bool
    no_gate: bool
    alpha: float
    tolerance: dict[str, float]
    max_interference: float
    host_ref: str
    confirm: int
    eval_limit: int | None
    asv: Path | None
    slo: Any
    slo_attainment: float
    load_budget: float
    server_url: str | None
    server_model: str | None
    server: str  # the kind of local server (--inferlab-server)
    load_processes: int
    ray_address: str | None
    shard: Any
    shard_durations: Path | None
    fresh_process: bool
    ab: str | None
    ab_turns: str | None
    ab_side: str | None
    tune_trial: str | None
    prompts: str | None
    prompt_column: str | None
    requests: int | None
    input_tokens: int | None
    output_tokens: int | None
    explicit: frozenset[str] = frozenset()  # settings given on the command line: they beat a test's marker


def _ini_raw(config: pytest.Config, option: Option) -> Any:
    """The option's ini value as written, or None when the ini file does not set it."""
    if option.internal:
        return None  # never read from an ini file
    raw = config.getini(option.ini)
    return None if raw in (None, "", []) else raw


def given(config: pytest.Config, flag: str) -> bool:
    """Whether the user set ``flag`` on the command line or in the ini file (not defaulted)."""
    option = next(o for o in OPTIONS if o.flag == flag)
    return config.getoption(option.dest) is not None or _ini_raw(config, option) is not None


def workload_overrides(settings: Settings, start: Path) -> dict[str, Any]:
    """The workload fields the command line (or ini file) sets for every case: they beat a suite's
    ``workload_overrides``, which beat the workload's registered defaults. Prompts are read and checked
    here (a usage error naming the option, the file and the line)."""
    from pytest_inferlab.run.prompt_files import PromptFileError, source_of, user_prompts

    out: dict[str, Any] = {}
    if settings.prompts:
        try:
            out["prompts"] = source_of(settings.prompts, settings.prompt_column, start)
            user_prompts(out["prompts"])
        except PromptFileError as exc:
            raise pytest.UsageError(f"{PROMPTS}={settings.prompts}: {exc}") from None
    elif settings.prompt_column:
        raise pytest.UsageError(f"{PROMPT_COLUMN}={settings.prompt_column}: it names a column of "
                                f"{PROMPTS}=dataset:NAME; give that too")
    for field, value in (("count", settings.requests), ("input_tokens", settings.input_tokens),
                         ("output_tokens", settings.output_tokens)):
        if value is not None:
            out[field] = value
    return out


def read_settings(config: pytest.Config) -> Settings:
    values: dict[str, Any] = {}
    explicit = set()
    for option in OPTIONS:
        value = config.getoption(option.dest)
        if value is not None:
            explicit.add(option.dest.removeprefix("inferlab_"))
        if value is None:
            raw = _ini_raw(config, option)
            value = option.default if raw is None else _parse_ini(option, raw)
        values[option.dest.removeprefix("inferlab_")] = value
    for folder in ("results", "baselines", "asv", "shard_durations"):
        if values[folder] is None:
            continue
        values[folder] = Path(values[folder])
        if not values[folder].is_absolute():
            values[folder] = config.rootpath / values[folder]
    return Settings(**values, explicit=frozenset(explicit))


def _parse_ini(option: Option, raw: Any) -> Any:
    try:
        return option.parse(raw)
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini option {option.ini} = {raw!r}: {exc}") from None
