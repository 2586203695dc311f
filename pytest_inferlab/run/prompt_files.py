"""The user's own prompts: a JSONL file or a dataset in the local Hugging Face cache, as a workload's texts.

``--inferlab-prompts`` names them; the workload's ``prompts`` field then holds ``file:<absolute path>``
or ``dataset:<name>:<split>:<column>`` (so the record says what was measured). A file's lines are, one
object each, the forms the field's tools read:

- ``{"text": "..."}`` or ``{"prompt": "..."}``: a plain prompt (wrapped in the model's chat template
  unless the workload says ``chat_template=False``);
- ``{"messages": [{"role": "user", "content": "..."}, ...]}``: chat messages; the first user message
  is the prompt;
- ``{"conversations": [{"from": "human", "value": "..."}, ...]}``: a ShareGPT conversation; its first
  human turn is the prompt (as ``vllm bench serve`` reads ShareGPT).

A line that is none of these, a file with no prompt, a dataset or column that is not there: a
``PromptFileError`` naming the file and line (or the dataset and its columns).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_inferlab.ground.jsonio import json_lines

FILE, DATASET = "file:", "dataset:"
FORMS = ('{"text": ...}', '{"prompt": ...}', '{"messages": [{"role": "user", "content": ...}]}',
         '{"conversations": [{"from": "human", "value": ...}]}')


class PromptFileError(ValueError):
    """Prompts that cannot be read; the message names the file and line, or the dataset."""


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    where: str  # file:line, or dataset[row]


def is_user_prompts(prompts: str) -> bool:
    return prompts.startswith((FILE, DATASET))


def source_of(given: str, column: str | None, start: Path) -> str:
    """The workload's ``prompts`` value for what the user gave: a path (relative to ``start``) or
    ``dataset:NAME[:SPLIT]`` with its column."""
    if given.startswith(DATASET):
        name, _, split = given.removeprefix(DATASET).partition(":")
        if not name:
            raise PromptFileError(f"{given!r}: expected dataset:NAME or dataset:NAME:SPLIT (a dataset in the local "
                                  "Hugging Face cache)")
        return f"{DATASET}{name}:{split or 'train'}:{column or 'text'}"
    path = (start / given).expanduser().resolve()
    if not path.is_file():
        raise PromptFileError(f"{path}: no such file (a JSONL file of prompts: one of {', '.join(FORMS)} per line)")
    return f"{FILE}{path}"


@functools.lru_cache(maxsize=8)
def user_prompts(source: str) -> tuple[Prompt, ...]:
    """The prompts of a ``file:`` or ``dataset:`` source, in order."""
    if source.startswith(DATASET):
        name, split, column = source.removeprefix(DATASET).rsplit(":", 2)
        return _dataset(name, split, column)
    return _file(Path(source.removeprefix(FILE)))


def _file(path: Path) -> tuple[Prompt, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PromptFileError(f"{path}: {exc.strerror or exc}") from None
    prompts = []
    for where, item in json_lines(lines, str(path), PromptFileError):
        text = _text_of(item)
        if not text:
            raise PromptFileError(f"{where}: no prompt in it; a line is one of {', '.join(FORMS)}")
        prompts.append(Prompt(text, where))
    if not prompts:
        raise PromptFileError(f"{path}: no prompts (an empty file); a line is one of {', '.join(FORMS)}")
    return tuple(prompts)


def _text_of(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    for key in ("text", "prompt"):
        if isinstance(item.get(key), str) and item[key].strip():
            return item[key]
    for key, role_key, roles, content_key in (("messages", "role", ("user",), "content"),
                                              ("conversations", "from", ("human", "user"), "value")):
        turns = item.get(key)
        if isinstance(turns, list):
            first = next((t.get(content_key) for t in turns if isinstance(t, dict) and t.get(role_key) in roles), None)
            return first if isinstance(first, str) and first.strip() else None
    return None


def _dataset(name: str, split: str, column: str) -> tuple[Prompt, ...]:
    try:
        import datasets
    except ImportError:
        raise PromptFileError(f"dataset {name}: the datasets library is not installed (pip install datasets)") from None
    try:
        table = datasets.load_dataset(name, split=split)
    except Exception as exc:  # offline and not cached, no such split: the library's words, named
        raise PromptFileError(f"dataset {name} (split {split}) does not load from the local Hugging Face cache: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if column not in table.column_names:
        raise PromptFileError(f"dataset {name}: no column {column!r}; its columns: {', '.join(table.column_names)} "
                              "(--inferlab-prompt-column)")
    prompts = tuple(Prompt(text, f"{name}[{row}]") for row, text in enumerate(table[column])
                    if isinstance(text, str) and text.strip())
    if not prompts:
        raise PromptFileError(f"dataset {name}: column {column!r} holds no text")
    return prompts
