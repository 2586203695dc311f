"""The GGUF quantization ladder, made by llama.cpp's own quantizer.

A source GGUF file is first rewritten in floating point by gguf-py (``float_gguf``: every tensor
dequantized to F32, or F16 for the 2-D weights), then each rung (Q8_0 ... Q2_K) is made from that
by ``llama_model_quantize`` through llama-cpp-python's binding, as ``llama-quantize`` would. Files
are cached under the lab's cache folder, keyed by the source file's digest and the rung's settings,
and published whole (a half-written rung is never reused).

A source that is itself quantized (the embedded SmolLM2 file is Q4_1) can only give rungs whose
fidelity is bounded by the source's: that is allowed, and every rung made from it carries the
warning in its facts (``requantized_from``).
"""

from __future__ import annotations

import ctypes
import difflib
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_inferlab.ground.child import Progress, Report, run_child
from pytest_inferlab.engines.sources import cache_dir, gguf_file_type, gguf_header
from pytest_inferlab.ground.files import file_version
from pytest_inferlab.ground.jsonio import publish_folder

FLOAT_TYPES = ("F32", "F16")
#: Rung name -> llama.cpp's ``llama_ftype`` constant (llama.h), the types ``llama-quantize`` offers.
RUNGS: dict[str, str] = {
    "F32": "LLAMA_FTYPE_ALL_F32", "F16": "LLAMA_FTYPE_MOSTLY_F16", "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K", "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "Q3_K_M": "LLAMA_FTYPE_MOSTLY_Q3_K_M", "Q2_K": "LLAMA_FTYPE_MOSTLY_Q2_K",
}
LADDER = ("F32", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")
FLOAT_FILE_TYPES = {"ALL_F32", "MOSTLY_F16"}


class LadderError(ValueError):
    """A rung that cannot be made: an unknown name, a source that is not GGUF, a failed quantization."""


def check_rung(name: str) -> str:
    """The rung's canonical name; an unknown one is an error with the closest names."""
    canonical = name.upper()
    if canonical in RUNGS:
        return canonical
    close = difflib.get_close_matches(canonical, list(RUNGS), n=2)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise LadderError(f"unknown GGUF rung {name!r}{hint}; rungs: {', '.join(RUNGS)}")


@dataclass(frozen=True, slots=True)
class Rung:
    """A made rung: its file and the facts its records carry."""

    name: str
    path: Path
    facts: dict[str, Any]


def file_digest(path: Path) -> str:
    """sha256 of ``path``, computed once per version of the file (size and mtime) in a process."""
    return _digest(*file_version(path))


@functools.lru_cache(maxsize=32)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_gguf(path: Path) -> Any:
    """A GGUF reader, or an error naming the file (truncated, not GGUF)."""
    import gguf

    return _named(path, lambda: gguf.GGUFReader(str(path)))


def check_gguf(path: Path) -> None:
    """An error naming ``path`` unless it is a whole GGUF file (its header, parsed once per version)."""
    _named(path, lambda: gguf_header(path))


def _named(path: Path, read: Any) -> Any:
    try:
        return read()
    except Exception as exc:
        raise LadderError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}); give a whole .gguf "
                          "file (a download cut short is the usual cause)") from exc


def float_gguf(source: Path, target: Path, kind: str = "F32", report: Report | None = None) -> None:
    """Rewrite ``source`` with every tensor dequantized: F32, or F16 for 2-D weights (1-D norms and
    biases stay F32, as llama.cpp's converter keeps them). Metadata is copied, the file type set."""
    import gguf
    import numpy as np

    reader = read_gguf(source)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    writer = gguf.GGUFWriter(str(target), arch.contents())
    file_type = gguf.LlamaFileType.ALL_F32 if kind == "F32" else gguf.LlamaFileType.MOSTLY_F16
    for field in reader.fields.values():
        if field.name in (gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.FILE_TYPE) or field.name.startswith("GGUF."):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    writer.add_file_type(int(file_type))
    for index, tensor in enumerate(reader.tensors):
        if report is not None:
            report(index, len(reader.tensors), f"{kind} rewrite, tensor")
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if kind == "F16" and values.ndim > 1:
            values = values.astype(np.float16)
        writer.add_tensor(tensor.name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _quantize(source: Path, target: Path, rung: str, threads: int, allow_requantize: bool,
              report: Report | None = None) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, RUNGS[rung])
    params.nthread = threads
    params.allow_requantize = allow_requantize
    if report is not None:
        _report_tensors(report, f"{rung} quantization, tensor")
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if status != 0:
        raise LadderError(f"llama.cpp could not quantize {source} to {rung} (llama_model_quantize returned {status})")


_LOG_CALLBACKS: list[Any] = []
QUANTIZER_LINE = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]")  # llama-quant.cpp logs "[  12/ 272] name - ..." per tensor


def _report_tensors(report: Report, what: str) -> None:
    """llama.cpp's log read for the quantizer's per-tensor lines (public ``llama_log_set``). In the
    child process only: its log is nobody else's, so the default logger is not put back."""
    import llama_cpp

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, user_data: Any) -> None:
        found = QUANTIZER_LINE.match(text.lstrip())
        if found:
            report(int(found.group(1)) - 1, int(found.group(2)), what)

    _LOG_CALLBACKS.append(on_log)  # a ctypes callback must outlive its registration
    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))


def make_rung_file(job: dict[str, Any], report: Report) -> dict[str, Any]:
    """In a child process (ground/child.py): one rung's file, the float rewrite of the source or the
    quantizer's output. gguf-py's rewrite holds the whole model in float and llama.cpp's quantizer runs
    its own threads: neither belongs in the measuring process."""
    target = Path(job["target"])
    if job["float_source"] is None:
        float_gguf(Path(job["source"]), target, job["rung"], report)
    else:
        _quantize(Path(job["float_source"]), target, job["rung"], job["threads"], allow_requantize=False, report=report)
    return {"bytes": target.stat().st_size}


def make_rung(source: Path, rung: str, threads: int = 2, cache: Path | None = None,
              progress: Progress | None = None) -> Rung:
    """The rung's file, made once per (source digest, rung) in a child process and then reused."""
    rung = check_rung(rung)
    check_gguf(source)  # a truncated or non-GGUF source is an error naming it, before anything is made
    source_type = gguf_file_type(source)
    digest = file_digest(source)
    key = hashlib.sha256(json.dumps({"source": digest, "rung": rung, "float": "F32"}).encode()).hexdigest()[:16]
    folder = (cache or cache_dir()) / "gguf-ladder" / f"{rung}-{key}"
    facts: dict[str, Any] = {"rung": rung, "source_sha256": digest, "source_file_type": source_type,
                             "made_by": "gguf-py (float rewrite) + llama_model_quantize"}
    if source_type is not None and source_type not in FLOAT_FILE_TYPES:
        facts["requantized_from"] = (f"the source is {source_type.removeprefix('MOSTLY_')}: it was dequantized and quantized again, so this "
                                     f"rung's fidelity is bounded by the source's")
    if not (folder / "model.gguf").is_file():
        # Quantized rungs start from the F32 rung, made once and kept (every rung of a ladder needs it).
        float_source = None if rung in FLOAT_TYPES else make_rung(source, "F32", threads, cache, progress).path

        def fill(temp: Path) -> None:
            run_child(f"{__name__}:make_rung_file", {
                "source": str(source), "float_source": str(float_source) if float_source else None,
                "target": str(temp / "model.gguf"), "rung": rung, "threads": threads,
            }, what=f"GGUF rung {rung} of {source} (child process)", progress=progress)
            (temp / "rung.json").write_text(json.dumps(facts, indent=1))
        publish_folder(folder, fill)
    return Rung(rung, folder / "model.gguf", facts)
