"""Speculative measurements and the exactness check on hand-made traces; the vLLM mapping."""

import pytest

from pytest_inferlab.engines.vllm_args import NoVllmEquivalent, speculative_engine_args
from pytest_inferlab.specs.core import SpeculativeSpec
from pytest_inferlab.optimizations.speculative import SpeculativeConfigError, check_tokenizers, resolve_speculative
from pytest_inferlab.ground.trace import AssistUsage
from pytest_inferlab.measure.speculative import speculative_measurements, unigram_tv
from pytest_inferlab.ground.trace import RequestTrace, RoundTrace


def round_of(outputs, seconds, chunks=None):
    requests = tuple(RequestTrace(i, 0.0, tuple(seconds * (k + 1) / len(ids) for k in range(len(chunks or ids))),
                                  tuple(chunks or (1,) * len(ids)), 5, tuple(ids)) for i, ids in enumerate(outputs))
    return RoundTrace(0.0, seconds, requests)


class ScoringTwin:
    """The undrafted target: its log-probabilities put tokens 5 and 9 ``gap`` nats apart."""

    def __init__(self, gap):
        self.gap = gap

    def window_log_probs(self, windows):
        import torch

        [ids] = windows
        row = torch.full((16,), -10.0)
        row[5], row[9] = -0.5, -0.5 - self.gap
        return [row.expand(len(ids) - 1, 16)]


class Drafting:
    info = type("Info", (), {"speculative": SpeculativeSpec.of("prompt-lookup")})()
    assist_log = []

    def __init__(self, twin):
        self.twin = twin

    def without_assist(self):
        return self.twin


@pytest.mark.parametrize("gap, near", [(0.09, True), (2.0, False)])
def test_a_greedy_divergence_is_tolerated_only_at_a_near_tie(gap, near):
    from pytest_inferlab.measure.speculative_pairs import SpeculativePairs
    from pytest_inferlab.specs.core import SamplingSpec

    pairs = SpeculativePairs(Drafting(ScoringTwin(gap)))
    pairs.prompts = {0: (1, 2, 3), 1: (4, 4)}
    pairs.undrafted = [round_of([(1, 2, 3), (4, 5, 6)], 1.0)]
    pairs.drafted = [round_of([(1, 2, 3), (4, 9, 6)], 0.5)]
    _, check = pairs.measurements(SamplingSpec())
    mismatch = check["first_mismatch"]  # the record's legacy form: target / speculative
    assert check["exact"] is False and mismatch["near_tie"] is near
    assert (mismatch["target"], mismatch["speculative"]) == (5, 9)
    assert mismatch["tie_margin_nats"] == pytest.approx(gap)
    assert check["exactness"] == ("near-tie" if near else "diverged")
    assert check["exactness_check"]["first_mismatch"]["tie_margin_nats"] == pytest.approx(gap)


def test_speculative_measurements_from_counts():
    ref = [round_of([(1,) * 8], 2.0), round_of([(1,) * 8], 2.2)]
    spec = [round_of([(1,) * 8], 1.0, chunks=(3, 3, 2)), round_of([(1,) * 8], 1.0, chunks=(4, 4))]
    usages = [AssistUsage(target_forwards=3, proposed=9, draft_s=0.1, seconds=1.0),
              AssistUsage(target_forwards=2, proposed=8, draft_s=0.1, seconds=1.0)]
    m = speculative_measurements(ref, spec, usages, seed=0)
    assert m["target_forwards"].value == 5 and m["tokens_per_target_forward"].value == pytest.approx(16 / 5)
    assert m["acceptance_rate"].value == pytest.approx((16 - 5) / 17)
    assert m["draft_cost_share"].value == pytest.approx(0.1)
    assert m["speculative_speedup"].samples == (pytest.approx(2.0), pytest.approx(2.2))
    assert m["target_output_tok_per_s"].value == pytest.approx(16 / 4.2)


def test_unigram_tv():
    a = [round_of([(1, 1, 2, 2)], 1.0)]
    assert unigram_tv(a, a) == 0.0
    assert unigram_tv(a, [round_of([(3, 3, 3, 3)], 1.0)]) == 1.0
    assert unigram_tv(a, [round_of([(1, 1, 1, 2)], 1.0)]) == pytest.approx(0.25)


def test_unknown_method_and_settings():
    with pytest.raises(KeyError, match="Did you mean 'prompt-lookup'"):
        resolve_speculative("prompt-lokup")
    from pytest_inferlab.optimizations.speculative import drafters

    with pytest.raises(SpeculativeConfigError, match="unknown setting.*'num_token'.*known: num_tokens, max_ngram"):
        drafters.get("prompt-lookup").assist(SpeculativeSpec.of("prompt-lookup", num_token=3), None, None)


class Vocab:
    def __init__(self, words):
        self.words = {w: i for i, w in enumerate(words)}

    def get_vocab(self):
        return self.words

    def __len__(self):
        return len(self.words)


def test_tokenizers_must_match_for_draft_only():
    same, other = Vocab(["a", "b"]), Vocab(["a", "b", "c"])
    check_tokenizers(SpeculativeSpec.of("draft"), "t", same, Vocab(["a", "b"]))
    with pytest.raises(SpeculativeConfigError, match="another tokenizer.*3 vs 2 tokens.*universal-draft"):
        check_tokenizers(SpeculativeSpec.of("draft", model="d"), "t", other, same)
    check_tokenizers(SpeculativeSpec.of("universal-draft", model="d"), "t", other, same)


def test_vllm_speculative_config():
    assert speculative_engine_args(SpeculativeSpec.of("prompt-lookup", num_tokens=4, max_ngram=3), "m") == {
        "speculative_config": {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3,
                               "prompt_lookup_min": 1}}
    assert speculative_engine_args(SpeculativeSpec.of("draft", model="org/small"), "org/big") == {
        "speculative_config": {"model": "org/small", "num_speculative_tokens": 5}}
    assert speculative_engine_args(SpeculativeSpec.of("eagle", model="org/eagle-head", variant="eagle3"), "m")[
        "speculative_config"]["method"] == "eagle3"
    with pytest.raises(NoVllmEquivalent, match="no vLLM counterpart"):
        speculative_engine_args(SpeculativeSpec.of("early-exit"), "m")
    with pytest.raises(NoVllmEquivalent, match="truncated or quantized copy"):
        speculative_engine_args(SpeculativeSpec.of("draft", layers=6), "m")
