"""lm-eval on the shipped tasks offline, the trade-off table and plot, decode bandwidth."""

from __future__ import annotations

import json

import pytest

from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.measure.catalog import facts_of
from pytest_inferlab.measure.evals import SHIPPED_TASKS, EvalError, evaluate, record_metrics, tasks_dir
from pytest_inferlab.outputs.pareto import Point, format_tradeoff, pareto_front, plot_tradeoff
from pytest_inferlab.run.probes.bandwidth import copy_bandwidth_gb_per_s, decode_bandwidth_gb_per_s
from pytest_inferlab.engines.sources import resolve_model

pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'pytest-inferlab[eval]')")


@pytest.fixture(scope="module")
def tiny():
    return load_engine("transformers", resolve_model("dummy:tiny"), CPU)


def test_the_shipped_multiple_choice_task_has_120_well_formed_items():
    from pathlib import Path

    items = [json.loads(line) for line in (Path(tasks_dir()) / "inferlab_mc.jsonl").read_text().splitlines()]
    assert len(items) >= 100
    assert all(len(set(i["choices"])) == 4 and 0 <= i["answer"] < 4 for i in items)
    assert len({i["question"] for i in items}) == len(items)


@pytest.mark.slow
def test_shipped_tasks_run_offline_with_per_item_correctness(tiny):
    results = evaluate(tiny.module, tiny.tokenizer, "cpu", SHIPPED_TASKS, limit=5)
    mc, ppl = results["inferlab_mc"], results["inferlab_ppl"]
    assert len(mc.items) == 5 and mc.metrics["acc"] == sum(mc.items) / 5
    assert ppl.items is None and ppl.metrics["word_perplexity"] > 1 and ppl.metrics["bits_per_byte"] > 0
    metrics = record_metrics(results)
    assert metrics["inferlab_mc.acc"] == mc.metrics["acc"]
    assert facts_of("inferlab_mc.acc").higher_is_better and not facts_of("inferlab_ppl.word_perplexity").higher_is_better
    assert facts_of("other_task.acc_norm").higher_is_better  # any lm-eval task's score, by its metric name


def test_an_unknown_task_names_the_shipped_ones(tiny):
    with pytest.raises(EvalError, match=r"\['inferlab_mcq'\] unknown; shipped: inferlab_mc, inferlab_ppl"):
        evaluate(tiny.module, tiny.tokenizer, "cpu", ["inferlab_mcq"], limit=1)


def _point(method, speed, nbytes, kld, batch=1, items=None):
    return Point(method, batch, speed, nbytes, kld, None, None, items, None)


def test_the_pareto_front_keeps_what_nothing_beats_on_speed_fidelity_and_bytes():
    fp32 = _point("fp32", 30.0, 500, 0.0, items=(True, True, False, True))
    int8 = _point("int8-weight", 25.0, 200, 0.003, items=(True, False, False, True))
    worse = _point("int8-dynamic", 10.0, 200, 0.03)  # slower, less faithful, same bytes as int8: dominated
    other_batch = _point("int8-dynamic", 50.0, 200, 0.03, batch=4)  # judged only among batch 4
    front = pareto_front([fp32, int8, worse, other_batch])
    assert front == {fp32, int8, other_batch}
    lines = format_tradeoff([fp32, int8, worse, other_batch])
    row = next(line for line in lines if line.startswith("int8-weight"))
    assert "~0.83 unpaired" in row and "0.40" in row and "-1/+0 p=1.00" in row and row.endswith("yes")
    assert "1 (reference)" in next(line for line in lines if line.startswith("fp32"))
    assert not next(line for line in lines if line.startswith("int8-dynamic") and " 1 " in line).endswith("yes")


def test_the_plot_is_a_png(tmp_path):
    path = plot_tradeoff([_point("fp32", 30.0, 500, 0.0), _point("int4-weight", 12.0, 230, 0.3)], tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert not list(tmp_path.glob(".tmp-*"))


def test_decode_bandwidth_is_weight_bytes_per_decode_step():
    assert decode_bandwidth_gb_per_s(2_000_000_000, 100.0) == pytest.approx(20.0)
    assert decode_bandwidth_gb_per_s(None, 100.0) is None and decode_bandwidth_gb_per_s(10, None) is None
    assert 0.1 < copy_bandwidth_gb_per_s(CPU) < 10_000


def test_a_paired_speed_ratio_prints_with_its_interval():
    fp32 = _point("fp32", 30.0, 500, 0.0)
    paired = Point("bf16", 1, 27.0, 250, 0.001, None, None, None, None, (0.91, 0.86, 0.97))
    row = next(line for line in format_tradeoff([fp32, paired]) if line.startswith("bf16"))
    assert "0.91 [0.86, 0.97]" in row and "unpaired" not in row


def test_the_trade_off_takes_variants_alone_not_their_compositions():
    from handmade_records import make_record
    from pytest_inferlab.outputs.pareto import points_from_records

    def record(spec):
        return make_record({"output_tok_per_s": 30.0, "model_bytes": 1e8}, spec={"batch_size": 1, **spec})

    gptq = {"model": {"name": "m", "quant": {"method": "gptq", "settings": []}}}
    records = [record(gptq), record({**gptq, "speculative": {"method": "prompt-lookup"}}),
               record({"model": {"name": "m", "quant": None}})]
    assert [p.method for p in points_from_records(records)] == ["gptq"]
