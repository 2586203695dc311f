"""What is read back from a run folder: the folder itself (manifest, refusals), the findings, the
HTML report and the comparison of two runs, on hand-made records with known answers."""

import json
import math

import pytest
from handmade_records import from_stored

from pytest_inferlab.cli import main
from pytest_inferlab.judge.compare import compare_runs, format_comparison, lockstep_pair
from pytest_inferlab.outputs.families import BATCHING, COMPOSITION, KV, LATENCY, QUANT, SPECULATIVE
from pytest_inferlab.outputs.decisions import front_points, pareto_front
from pytest_inferlab.outputs.findings import findings_of
from pytest_inferlab.outputs.findings_table import format_findings
from pytest_inferlab.outputs.html_report import build_report, write_report
from pytest_inferlab.record.run_folder import (MANIFEST, RunFolderError, finish_manifest, load_run,
                                               start_manifest)

HOSTILE = "<script>window.__pwned = 1</script>"
MiB = 2**20


def measurement(value, ci=None, unit="x"):
    out = {"unit": unit, "value": value, "mean": None, "p50": None, "p90": None, "p99": None, "n": 0, "samples": []}
    if ci:
        out["ci95"] = list(ci)
    return out


def record(test_id, values, spec=None, conditions=None, evals=None, run_id="r1", round_values=None, **extra):
    spec = {"model": {"name": "smollm2-135m", "quant": None}, "workload": {"name": "short-chat", "count": 4},
            "batch_size": 1, "device": "cpu", "measure": "latency", **(spec or {})}
    measurements = {name: value if isinstance(value, dict) else measurement(value) for name, value in values.items()}
    return {"schema_version": 1, "run_id": run_id, "test_id": test_id, "params": {}, "spec_id": extra.get("spec_id", "a" * 12),
            "spec": spec, "measurements": measurements, "absent": {}, "engine": {"engine": "transformers"},
            "environment": {"python": "3.11", "git": {"commit": "abc"}}, "machine_id": "cpu-1", "seed": 0,
            "started_at": "2026-12-02T10:00:00+00:00", "finished_at": "2026-12-02T10:01:00+00:00", "rounds": 3,
            "warmup_rounds": 1, "conditions": {**(conditions or {})}, "output_digest": None, "verdicts": [],
            "baseline": None, "evals": evals or {}, "curve": [], "round_values": round_values or {}}


def typed(records):
    """The hand-made records as a run folder reads them back (handmade_records.from_stored)."""
    return [from_stored(data) for data in records]


def quant(method):
    return {"method": method, "settings": []}


def run_records():
    """A small tour: the plain model, a variant, a KV cache, drafting, a composition, two batchers."""
    reference = {"model": "smollm2-135m", "quant": None, "kv_cache": None, "model_bytes": 512 * MiB,
                 "kv_bytes_per_token": 46080}
    items_ref, items_var = [True] * 8 + [False] * 2, [True] * 6 + [False] * 4
    return [
        record("suites/t.py::test_latency[short-chat-1]", {"output_tok_per_s": 30.0, "peak_mem_bytes": 900 * MiB,
                                                           "kv_bytes_per_token": 46080}),
        record("suites/t.py::test_quantized[gptq-4]",
               {"output_tok_per_s": 60.0, "speedup_vs_reference": measurement(1.6, (1.4, 1.8)), "model_bytes": 128 * MiB,
                "kld_mean": 0.17, "top1_agreement": 0.77, "inferlab_mc.acc": 0.6},
               {"model": {"name": "smollm2-135m", "quant": quant("gptq")}, "batch_size": 4},
               {"compared_to": {"reference": reference},
                "reference_evals": {"model": "smollm2-135m",
                                    "tasks": {"inferlab_mc": {"metrics": {"acc": 0.8}, "items": items_ref, "limit": None}}}},
               evals={"inferlab_mc": {"metrics": {"acc": 0.6}, "items": items_var, "limit": None}}, spec_id="b" * 12),
        record("suites/t.py::test_kv_cache[fp8-4]",
               {"output_tok_per_s": 27.0, "speedup_vs_reference": measurement(0.9, (0.85, 0.95)),
                "kv_bytes_per_token": 11520, "kv_token_agreement": 0.8},
               {"kv_cache": {"kind": "fp8", "settings": []}}, {"compared_to": {"reference": reference}}, spec_id="c" * 12),
        record(f"suites/t.py::test_speculative[{HOSTILE}]",
               {"output_tok_per_s": 70.0, "speculative_speedup": measurement(2.4, (2.3, 2.5))},
               {"speculative": {"method": "prompt-lookup", "settings": [["num_tokens", 10]]},
                "workload": {"name": "copy-edit", "count": 1}},
               {"speculative": {"exact": True}}, spec_id="d" * 12),
        record("suites/t.py::test_composed[gptq-prompt-lookup]",
               {"output_tok_per_s": 75.0, "speedup_vs_reference": measurement(2.2, (1.9, 2.5)),
                "speculative_speedup": measurement(1.7, (1.6, 1.8)), "model_bytes": 128 * MiB, "top1_agreement": 0.77},
               {"model": {"name": "smollm2-135m", "quant": quant("gptq")},
                "speculative": {"method": "prompt-lookup", "settings": []}},
               {"speculative": {"exact": True}, "compared_to": {"reference": reference}}, spec_id="e" * 12),
        record("suites/t.py::test_concurrency[sequential-closed:4]", {"output_tok_per_s": 16.0},
               {"batching": {"kind": "sequential", "settings": []}, "load": {"process": "closed", "concurrency": 4,
                                                                             "rate": None, "burst_size": None, "seed": 0}},
               spec_id="f" * 12),
        record("suites/t.py::test_concurrency[continuous-closed:4]", {"output_tok_per_s": 40.0},
               {"batching": {"kind": "continuous", "settings": []}, "load": {"process": "closed", "concurrency": 4,
                                                                             "rate": None, "burst_size": None, "seed": 0}},
               spec_id="0" * 12),
    ]


def write_run(folder, records, status="finished"):
    folder.mkdir(parents=True)
    for index, data in enumerate(records):
        (folder / f"case-{index}.json").write_text(json.dumps(data))
    start_manifest(folder, folder.name, ["pytest", "suites/"])
    if status != "running":
        finish_manifest(folder, folder.name, ["pytest", "suites/"], 0, interrupted=status == "interrupted")
    return folder


# ---- the run folder -------------------------------------------------------------------------------
def test_a_run_is_marked_running_until_its_end_and_a_report_refuses_it_then(tmp_path):
    folder = write_run(tmp_path / "run", run_records(), status="running")
    assert json.loads((folder / MANIFEST).read_text())["status"] == "running"
    with pytest.raises(RunFolderError, match="has not finished"):
        load_run(folder)
    finish_manifest(folder, "run", ["pytest"], 1, interrupted=False)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["status"] == "finished" and manifest["exit_status"] == 1 and manifest["records"] == 7
    assert manifest["started_at"] is not None
    assert len(load_run(folder).records) == 7


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "not a folder"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "not a run: no records"),
])
def test_what_is_not_a_run_is_refused_naming_it(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(RunFolderError, match=message) as caught:
        load_run(path)
    assert str(path) in str(caught.value)


def test_a_folder_of_runs_names_one_of_them(tmp_path):
    write_run(tmp_path / "runs" / "20261202T100000Z-aaaaaa", run_records())
    with pytest.raises(RunFolderError, match=r"pass one of them, e.g. .*20261202T100000Z-aaaaaa"):
        load_run(tmp_path)


def test_a_half_written_record_an_unknown_schema_or_a_temp_file_is_refused_naming_the_file(tmp_path):
    folder = write_run(tmp_path / "run", run_records())
    (folder / "case-0.json").write_text('{"schema_version": 1, "run_id": "r1", "test_')  # truncated
    with pytest.raises(RunFolderError, match=r"case-0.json is unreadable"):
        load_run(folder)
    (folder / "case-0.json").write_text(json.dumps({**run_records()[0], "schema_version": 99}))
    with pytest.raises(RunFolderError, match=r"case-0.json: schema_version 99 is not supported"):
        load_run(folder)
    (folder / "case-0.json").write_text(json.dumps(run_records()[0]))
    (folder / ".tmp-123-x.json").write_text("{")
    with pytest.raises(RunFolderError, match=r"\.tmp-123-x.json: a temporary file .* half-written"):
        load_run(folder)


def test_a_run_without_a_manifest_is_an_older_finished_run(tmp_path):
    folder = write_run(tmp_path / "run", run_records())
    (folder / MANIFEST).unlink()
    run = load_run(folder)
    assert run.manifest is None and run.status == "finished" and run.run_id == "r1"


# ---- findings -------------------------------------------------------------------------------------
def test_each_finding_is_judged_against_its_own_reference():
    found = {f.test_id.split("::")[1]: f for f in findings_of(typed(run_records()))}
    plain = found["test_latency[short-chat-1]"]
    assert plain.family == LATENCY and plain.speed is None and "the plain model" in plain.words()
    gptq = found["test_quantized[gptq-4]"]
    assert gptq.family == QUANT and gptq.speed.interval == (1.4, 1.8) and gptq.speed.paired
    assert gptq.memory_ratio == pytest.approx(0.25) and "weights x0.25" in gptq.memory
    assert gptq.agreement == 0.77 and "KLD 0.17" in gptq.fidelity
    # 8 of 10 right before, 6 of 10 after, 2 lost and none gained: exact McNemar p = 0.5
    assert gptq.accuracy == "inferlab_mc acc 0.600 vs 0.800 (-2/+0 items, p=0.50)"
    assert gptq.words().startswith("gptq on short-chat, batch 4: 1.60x faster than smollm2-135m (same rounds)")
    kv = found["test_kv_cache[fp8-4]"]
    assert kv.family == KV and kv.memory_ratio == pytest.approx(0.25) and "1.11x slower" in kv.words()
    drafted = found[f"test_speculative[{HOSTILE}]"]
    assert drafted.family == SPECULATIVE and drafted.speed.against == "the target without drafting"
    assert drafted.memory_ratio == 1.0 and drafted.agreement == 1.0
    composed = found["test_composed[gptq-prompt-lookup]"]
    assert composed.family == COMPOSITION and composed.speed.ratio == 2.2  # the combined effect, not drafting's 1.7
    assert composed.drafting.ratio == 1.7 and composed.drafting.interval == (1.6, 1.8)
    assert "the drafting alone: 1.70x faster than its target without drafting" in composed.words()
    assert drafted.drafting is None and gptq.drafting is None
    continuous = found["test_concurrency[continuous-closed:4]"]
    assert continuous.family == BATCHING and not continuous.speed.paired
    assert continuous.speed.ratio == pytest.approx(2.5) and "sequential batching closed:4" in continuous.speed.against
    assert found["test_concurrency[sequential-closed:4]"].speed is None


def test_a_composition_without_its_paired_ratio_is_never_given_its_draftings_speed():
    records = run_records()
    composed = next(r for r in records if "test_composed" in r["test_id"])
    del composed["measurements"]["speedup_vs_reference"]  # e.g. 2 rounds: no interval, an absent reason
    found = next(f for f in findings_of(typed(records)) if f.family == COMPOSITION)
    assert not found.speed.paired and found.speed.ratio == pytest.approx(75 / 30)  # against the plain model
    assert found.drafting.ratio == 1.7


def test_an_interval_that_spans_one_is_no_clear_difference():
    data = record("t.py::test_v[bf16-1]", {"output_tok_per_s": 30.0, "speedup_vs_reference": measurement(1.02, (0.95, 1.1))},
                  {"model": {"name": "m", "quant": quant("bf16")}}, {"compared_to": {"reference": {"model": "m"}}})
    [finding] = findings_of(typed([data]))
    assert "no clear speed difference" in finding.words() and "spans 1" in finding.words()


def test_the_front_keeps_only_what_nothing_beats_on_speed_memory_and_fidelity():
    points, left_out = front_points(findings_of(typed(run_records())))
    names = {p.finding.test_id.split("::")[1] for p in pareto_front(points)}
    # the composition beats gptq alone (faster, same bytes and agreement); drafting is exact at 1x memory;
    # the fp8 cache is the smallest; the plain model is beaten by lossless drafting
    assert names == {"test_composed[gptq-prompt-lookup]", f"test_speculative[{HOSTILE}]", "test_kv_cache[fp8-4]"}
    assert {f.family for f in left_out} == {BATCHING}


def test_the_findings_table_has_a_row_and_a_sentence_per_finding():
    lines = format_findings(findings_of(typed(run_records())))
    assert lines[0].split()[:3] == ["family", "optimization", "tok/s"]
    assert any(line.startswith("quantization") and "1.60 [1.40, 1.80]" in line for line in lines)
    assert sum(line.startswith("  ") for line in lines) == 7  # the sentences


def test_the_pick_is_the_fastest_rung_or_variant_that_keeps_the_references_top1_and_names_its_engine():
    def variant(method, engine, speed, top1):
        found = record(f"suites/t.py::test_q[{method}]",
                       {"output_tok_per_s": 30.0 * speed, "speedup_vs_reference": measurement(speed, (speed - 0.2, speed + 0.2)),
                        "model_bytes": 128 * MiB, "kld_mean": 0.01, "top1_agreement": top1},
                       {"model": {"name": "smollm2-135m", "quant": quant(method)}}, spec_id=method[:12].ljust(12, "x"))
        found["engine"] = {"engine": engine}
        return found

    records = [variant("gguf-q4_0", "llamacpp", 8.0, 0.7),  # fastest, but loses too much of the reference
               variant("gguf-q8_0", "llamacpp", 5.4, 0.96), variant("int8-weight", "transformers", 1.5, 0.98)]
    lines = format_findings(findings_of(typed(records)))
    [advice] = [line for line in lines if line.startswith("pick: ")]
    assert advice.startswith("pick: gguf-q8_0 on llama.cpp on short-chat, 5.40x") and "at least 90% top-1" in advice
    assert not [line for line in format_findings(findings_of(typed(records[:1]))) if line.startswith("pick")]


@pytest.mark.parametrize("near_tie, words, failed", [(True, "up to a near tie (0.09 nats", False),
                                                      (False, "output NOT the target's", True)])
def test_a_drafting_divergence_reads_as_a_near_tie_or_a_failure(near_tie, words, failed):
    check = {"exact": False, "first_mismatch": {"request": 0, "position": 33, "target": 8581, "speculative": 40705,
                                                "tie_margin_nats": 0.0916, "near_tie": near_tie}}
    drafted = record("suites/t.py::test_speculative[lookup]",
                     {"output_tok_per_s": 20.0, "speculative_speedup": measurement(0.7, (0.6, 0.8))},
                     {"speculative": {"method": "prompt-lookup", "settings": []}}, {"speculative": check})
    [finding] = findings_of(typed([drafted]))
    assert words in finding.fidelity and finding.failed is failed


# ---- the report -----------------------------------------------------------------------------------
def test_the_report_escapes_every_text_from_the_records_and_needs_no_network(tmp_path):
    folder = write_run(tmp_path / "run", run_records())
    page = build_report(load_run(folder))
    assert HOSTILE not in page and "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for section in ("What was found", "Speed x memory x fidelity", "Latency-throughput", "Verdicts", "Environment"):
        assert f"<h2>{section}</h2>" in page
    on_plane, _ = front_points(findings_of(typed(run_records())))
    assert page.count('<svg class="front"') == 1 and page.count("<circle") == len(on_plane) == 5
    assert "data:image/png" not in page  # no case ran under a load: no curves


def test_inferlab_report_writes_the_page_and_refuses_a_half_written_run_writing_nothing(tmp_path, capsys):
    folder = write_run(tmp_path / "run", run_records())
    assert main(["report", str(folder)]) == 0
    assert (folder / "report.html").read_text().startswith("<!DOCTYPE html>")
    running = write_run(tmp_path / "running", run_records(), status="running")
    assert main(["report", str(running)]) == 2
    assert "has not finished" in capsys.readouterr().err and not (running / "report.html").exists()
    with pytest.raises(RunFolderError):
        write_report(tmp_path / "nothing-here")


def test_the_report_in_a_real_browser_shows_hostile_names_as_text_and_logs_no_error(tmp_path, browser):
    from browsing import ARTIFACTS

    page = write_report(write_run(tmp_path / "run", run_records()))
    browser.get(page.as_uri())
    text = browser.find_element("tag name", "body").text
    assert HOSTILE in text and browser.execute_script("return window.__pwned") is None
    assert "quantization" in text and "1.60 [1.40, 1.80]" in text
    front = browser.find_element("css selector", "svg.front")
    assert front.size["width"] > 500 and len(front.find_elements("css selector", "circle")) >= 2
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "run-report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


# ---- compare --------------------------------------------------------------------------------------
def timed(test_id, tpot, model_bytes=100.0, spec_id="a" * 12, rounds=None, invalid=None):
    return record(test_id, {"tpot_ms": measurement(tpot, unit="ms"), "model_bytes": measurement(model_bytes, unit="B")},
                  conditions={"invalid": invalid} if invalid else {}, spec_id=spec_id,
                  round_values={"tpot_ms": rounds} if rounds else None)


def verdicts_of(result, test_id):
    case = next(c for c in result.cases if c.test_id == test_id)
    return {v.metric: v for v in case.verdicts}


def test_runs_made_apart_are_judged_as_the_gate_judges_one_baseline_run():
    a = [timed("t::same", 40.0), timed("t::bigger", 40.0), timed("t::only_a", 40.0, spec_id="b" * 12)]
    b = [timed("t::same", 40.0), timed("t::bigger", 60.0, model_bytes=110.0), timed("t::only_b", 40.0, spec_id="c" * 12)]
    result = compare_runs(typed(a), typed(b))
    assert not result.paired and result.only_first == ["t::only_a"] and result.only_second == ["t::only_b"]
    same, bigger = verdicts_of(result, "t::same"), verdicts_of(result, "t::bigger")
    assert same["tpot_ms"].ratio == pytest.approx(1.0) and same["model_bytes"].outcome == "unchanged"
    # 1.5x slower, but one run of history: the gate's assumed noise leaves a timing change inconclusive
    assert bigger["tpot_ms"].outcome == "inconclusive" and bigger["tpot_ms"].ratio == pytest.approx(1.5)
    low, high = bigger["tpot_ms"].interval
    assert low < 1.5 < high
    assert bigger["model_bytes"].outcome == "regressed"  # deterministic: 10% beyond a 0% tolerance
    assert result.regressed == [("t::bigger", "model_bytes")]
    text = "\n".join(format_comparison(result, "A", "B"))
    assert "only in A (1), not compared:" in text and "  t::only_b" in text and "REGRESSED" in text


def test_the_two_sides_of_one_ab_are_judged_on_paired_rounds():
    base = [timed("t::case", 40.0, rounds=[40.0, 41.0, 39.5, 40.5, 40.2, 39.8])]
    candidate = [timed("t::case", 48.0, rounds=[48.1, 49.0, 47.6, 48.4, 48.3, 47.9])]
    manifests = [{"command": ["pytest", "--inferlab-ab-turns=/tmp/s.sock", "--inferlab-ab-side=base"]},
                 {"command": ["pytest", "--inferlab-ab-turns=/tmp/s.sock", "--inferlab-ab-side=candidate"]}]
    assert lockstep_pair(*manifests) and not lockstep_pair(manifests[0], {"command": ["pytest"]})
    result = compare_runs(typed(base), typed(candidate), paired=True)
    assert verdicts_of(result, "t::case")["tpot_ms"].outcome == "regressed"


def test_an_invalid_side_makes_its_verdicts_invalid():
    result = compare_runs(typed([timed("t::c", 40.0)]),
                          typed([timed("t::c", 40.0, invalid="other processes used 30% of the CPU")]))
    assert verdicts_of(result, "t::c")["tpot_ms"].outcome == "invalid"


def test_inferlab_compare_prints_writes_json_and_exits_by_the_verdicts(tmp_path, capsys):
    a = write_run(tmp_path / "a", [timed("t::c", 40.0)])
    b = write_run(tmp_path / "b", [timed("t::c", 40.0, model_bytes=120.0)])
    assert main(["compare", str(a), str(a)]) == 0
    assert "1 case(s) in both runs" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--json", "-"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["cases"][0]["verdicts"][0]["metric"] == "model_bytes"
    assert main(["compare", str(a), str(b), "--json", str(tmp_path / "v.json"), "--all"]) == 1
    assert json.loads((tmp_path / "v.json").read_text())["only_a"] == []
    assert main(["compare", str(a), str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not math.isnan(payload["alpha_per_series"])
