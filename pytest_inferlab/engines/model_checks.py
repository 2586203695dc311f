"""Cheap checks that a model source can be loaded, before any case runs and without the weights.

A model that cannot be had fails once, in one line naming the path and what is wrong: a missing
file, a folder without a readable ``config.json``, a file that is not GGUF or is cut short, a hub id
that is not in the local cache. Loading would say the same thing later as a library traceback
(``cannot reshape array of size ...``), after the session had already started its cases.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

GGUF_MAGIC = b"GGUF"


class ModelSourceError(LookupError):
    """The model cannot be had; the message names the path or name and says what to do."""


def check_gguf_file(path: Path, full: bool = True) -> None:
    """A whole GGUF file: the magic, then (``full``) a header that parses and tensors that lie inside
    the file. ``full=False`` checks the magic only (files shipped in a package)."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise ModelSourceError(f"GGUF file {path} cannot be read ({exc.strerror})") from None
    if magic != GGUF_MAGIC:
        raise ModelSourceError(f"{path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})")
    if not full:
        return
    import gguf

    size = path.stat().st_size
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # the reader's errors on a cut file are numpy shape errors
        raise ModelSourceError(f"GGUF file {path} is truncated or corrupt: its header does not parse "
                              f"({type(exc).__name__}: {exc}); copy or download the file again") from None
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise ModelSourceError(f"GGUF file {path} is truncated: it has {size} bytes, its tensors need {end}; "
                              "copy or download the file again")


def check_model_folder(folder: Path) -> None:
    """A Hugging Face model folder: ``config.json`` present and a JSON object naming its model type."""
    config = folder / "config.json"
    if not config.is_file():
        raise ModelSourceError(f"{folder} is not a Hugging Face model folder (no config.json)")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelSourceError(f"{config} is not valid JSON ({exc}); the folder is not a usable model: restore "
                              "config.json or save the model again") from None
    if not isinstance(data, dict) or not (data.get("model_type") or data.get("architectures")):
        raise ModelSourceError(f"{config} names no model_type or architectures; the folder is not a usable model")


def check_hub_cache(repo_id: str) -> None:
    """A hub id whose config is in the local Hugging Face cache (runs never download)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(found, str):
        where = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        raise ModelSourceError(
            f"hub model {repo_id!r} is not in the local Hugging Face cache ({where}), and runs never download. "
            f"Fetch it on a machine with network (`hf download {repo_id}`), copy the cache here, or pass a "
            "local folder.")


def check_known(kind: str, name: str, known: list[str]) -> None:
    """``name`` is one of ``known``; else an error with the close matches."""
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ModelSourceError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}")
