"""inferlab tune with real trials: the embedded model, transformers fp32 against llama.cpp Q8_0, each
trial a pytest process of its own whose record is read back; a configuration that fails at run time
is recorded failed with its reason and the study goes on; the study's storage reads with Optuna."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("lm_eval", reason="lm-eval decides the task floor (make install installs it)")
pytest.importorskip("llama_cpp", reason="llama-cpp-python runs the GGUF rung (make install builds it)")

from pytest_inferlab.tune.trial import SUITE  # noqa: E402

STUDY = """
[study]
name = "real"
trials = 3
[study.workload_overrides]
count = 1
output_tokens = 8
[axes]
quantization = ["fp32", "gguf-q8_0"]
kv_cache = ["dynamic", "sliding-window"]
[slo]
tpot_ms = { p50 = 1000 }
[floor]
top1_agreement = { min = 0.9 }
kld_mean = { max = 0.05 }
inferlab_mc.acc = { margin = 0.25 }
"""


@pytest.mark.slow
@pytest.mark.alone
def test_a_real_study_measures_trials_as_lab_cases_and_picks(tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    done = subprocess.run([sys.executable, "-m", "pytest_inferlab.cli", "tune", str(study), "--results",
                           str(tmp_path / "results"), "--", "--inferlab-max-rounds=4", "--inferlab-round-budget=30",
                           "--inferlab-eval-limit=20"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "results" / "tune" / "real"
    answer = json.loads((folder / "tune.json").read_text())
    # gguf-q8_0 with a transformers cache configuration is pruned before anything runs, with its reason
    assert [p["config"] for p in answer["pruned"]] == ["gguf-q8_0 + kv sliding-window"]
    trials = {t["label"]: t for t in answer["trials"]}
    assert set(trials) == {"fp32", "gguf-q8_0", "fp32 + kv sliding-window"}
    # smollm2's attention is not windowed: the trial fails with the lab's own reason, the study goes on
    assert "not windowed" in trials["fp32 + kv sliding-window"]["failed"]
    fast = trials["gguf-q8_0"]
    assert fast["speed"]["low"] > 1.0  # llama.cpp Q8_0 against transformers fp32, paired
    floors = {f["metric"]: f for f in fast["floors"]}  # decided before timing, each kind from its evidence
    assert all(f["outcome"] == "shown" for f in floors.values()) and fast["spec_id"]
    assert floors["top1_agreement"]["samples"] == floors["kld_mean"]["samples"] > 1000  # fidelity text positions
    assert floors["kld_mean"]["value"] < floors["kld_mean"]["bound"] < 0.05
    assert floors["inferlab_mc.acc"]["samples"] == 20 and floors["inferlab_mc.acc"]["bound"] >= -0.25  # lm-eval items
    record = next(Path(fast["record"]).glob("*.json"))  # an ordinary record in the trial's run folder
    assert json.loads(record.read_text())["spec_id"] == fast["spec_id"]
    assert answer["pick"]["label"] == "gguf-q8_0"
    assert answer["confirmation"]["pick"] == "gguf-q8_0" and answer["confirmation"]["ratio"]["low"] > 1.0
    assert "head to head" in done.stdout and "reproduce it" in done.stdout

    import optuna  # the storage is Optuna's own: its tools read it
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "real.journal")))
    loaded = optuna.load_study(study_name="real", storage=storage)
    assert {t.user_attrs.get("label") for t in loaded.trials} >= set(trials)


def test_the_trial_module_alone_is_a_usage_error_pointing_at_inferlab_tune(tmp_path):
    (tmp_path / "none.ini").write_text("[pytest]\n")
    done = subprocess.run([sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "--rootdir",
                           str(tmp_path), "-c", str(tmp_path / "none.ini")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr  # an error at collection, nothing run
    assert "run `inferlab tune STUDY.toml`" in done.stdout
