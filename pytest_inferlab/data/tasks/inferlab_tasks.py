"""Datasets of the project's lm-eval tasks, read from files shipped beside this module (no hub).

lm-eval loads this module through ``custom_dataset: !function inferlab_tasks.<name>`` in the YAML
files of this folder (``TaskManager(include_path=<this folder>)``).
"""

import json
import re
from pathlib import Path

HERE = Path(__file__).parent


def _dataset(rows):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def mc_dataset(**_settings):
    """120 four-way multiple-choice items (tools/make_inferlab_mc.py wrote them)."""
    lines = (HERE / "inferlab_mc.jsonl").read_text(encoding="utf-8").splitlines()
    return _dataset([json.loads(line) for line in lines if line.strip()])


def ppl_dataset(**_settings):
    """The paragraphs of the shipped report text, one document each, for rolling perplexity."""
    text = (HERE.parent / "prompts" / "long_report.txt").read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return _dataset([{"id": i, "text": p} for i, p in enumerate(paragraphs)])


def ppl_process_results(doc, results):
    (loglikelihood,) = results
    words, nbytes = len(re.split(r"\s+", doc["text"])), len(doc["text"].encode("utf-8"))
    return {"word_perplexity": (loglikelihood, words), "byte_perplexity": (loglikelihood, nbytes),
            "bits_per_byte": (loglikelihood, nbytes)}
