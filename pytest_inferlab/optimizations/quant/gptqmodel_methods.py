"""GPTQ and AWQ through GPTQModel: weights quantized layer by layer against the activations of a
seeded calibration set (GPTQ: error-compensating rounding; AWQ: activation-aware channel scales).

Why GPTQModel: auto-gptq, which the design names, is archived; 0.7.1 installs but fails on import
with transformers 5 (``no_init_weights`` left ``transformers.modeling_utils``). GPTQModel
(ModelCloud) is its maintained successor. Its 7.7.0 declares torch>=2.14.1, which would make pip
fetch a CUDA torch, but its CPU path runs on torch 2.13: the Makefile installs it with --no-deps
and the ``quant`` extra lists the light packages it imports.

A quantized checkpoint is built once and cached on disk (``cache_dir()/gptq/<key>``; the key
covers the reference weights, the settings and the GPTQModel version), published whole, and every
session loads it from there. A user's own checkpoint: ``QuantSpec.of("gptq", checkpoint=PATH)``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.resources
import importlib.util
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from pytest_inferlab.compat import gptqmodel_log_dir
from pytest_inferlab.device import Device
from pytest_inferlab.ground.child import Progress, run_child
from pytest_inferlab.ground.jsonio import publish_folder, read_json_object
from pytest_inferlab.engines.sources import cache_dir
from pytest_inferlab.specs.core import stable_id
from pytest_inferlab.optimizations.quant import MethodDefaults, QuantSpec, QuantizationError, Variant, quant_methods

PINNED_VERSION = "7.7.0"
INSTALL_HINT = (f"GPTQModel is not installed: run `make install`, or pip install --no-deps gptqmodel=={PINNED_VERSION} "
                "and then pip install 'pytest-inferlab[quant]'")
CALIBRATION_TEXT = "data/calibration.txt"  # ~1,300 tokens of original mixed-genre text, not the fidelity text
# group 64: the embedded model's hidden size 576 is not a multiple of 128, which CPU int4 kernels need
DEFAULTS: dict[str, Any] = {"bits": 4, "group_size": 64, "samples": 32, "sample_tokens": 256, "seed": 0,
                            "checkpoint": None}


def _settings(spec: QuantSpec) -> dict[str, Any]:
    given = dict(spec.settings)
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise QuantizationError(f"{spec.method}: unknown setting(s) {unknown}; known: {', '.join(DEFAULTS)}")
    return {**DEFAULTS, **given}


def calibration_examples(tokenizer: Any, samples: int, tokens: int, seed: int) -> list[dict[str, list[int]]]:
    """``samples`` windows of ``tokens`` tokens at seeded random offsets of the shipped calibration text."""
    text = (importlib.resources.files("pytest_inferlab") / CALIBRATION_TEXT).read_text(encoding="utf-8")
    ids = tokenizer(text)["input_ids"]
    tokens = min(tokens, len(ids))
    rng = random.Random(seed)
    starts = [rng.randrange(0, len(ids) - tokens + 1) for _ in range(samples)]
    return [{"input_ids": ids[s:s + tokens], "attention_mask": [1] * tokens} for s in starts]


def weights_digest(model: Any) -> str:
    """sha256 of the model's config and every weight's bytes: the cache key of its quantized copy."""
    import torch

    digest = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()


def checkpoint_quant_config(path: Path, algorithm: str = "gptq") -> dict[str, Any]:
    """The quantization config of a GPTQ/AWQ checkpoint folder, or a clear error saying what is wrong."""
    expected = (f"expected a folder saved by GPTQModel (or auto-gptq/autoawq): config.json and *.safetensors, with "
                f"quantize_config.json or config.json's quantization_config naming quant_method {algorithm!r}")
    where = f"{algorithm} checkpoint={path}"
    if not path.is_dir():
        raise QuantizationError(f"{where}: no such folder; {expected}")
    found: dict[str, Any] | None = None
    for name in ("quantize_config.json", "quant_config.json"):
        if (path / name).is_file():
            found = read_json_object(path / name, QuantizationError, f"{where}:")
    config = read_json_object(path / "config.json", QuantizationError, f"{where}:") if (path / "config.json").is_file() else None
    if config is None:
        raise QuantizationError(f"{where}: config.json is missing; {expected}")
    found = found or config.get("quantization_config")
    method = (found or {}).get("quant_method", (found or {}).get("method"))
    if method is None and found and "bits" in found:
        method = "gptq"  # auto-gptq's quantize_config.json predates the field
    if not found or str(method).lower() != algorithm:
        claims = f"its quantization config says quant_method={method!r}" if found else "it has no quantization config"
        raise QuantizationError(f"{where}: not a {algorithm.upper()} checkpoint ({claims}); {expected}")
    if not any(path.glob("*.safetensors")):
        raise QuantizationError(f"{where}: no *.safetensors weights; {expected}")
    return found


def save_plain_checkpoint(reference: Any, tokenizer: Any, folder: Path) -> None:
    """The reference as a plain checkpoint a quantizer can load (a GGUF-loaded model carries a
    ``quantization_config`` of kind gguf, which would make loaders take it for a quantized one)."""
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(reference.config)
    config.__dict__.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(config, dtype=reference.dtype)
    plain.load_state_dict(reference.state_dict())
    plain.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def _quantize_into(folder: Path, reference: Any, tokenizer: Any, algorithm: str, settings: dict[str, Any],
                   device: Device, progress: Progress | None) -> None:
    """The reference saved as a plain checkpoint here, quantized by GPTQModel in a child process
    (ground/child.py): an in-process build left GPTQModel's worker threads behind and slowed every
    later case of the run 1.7x."""
    source = folder / "reference"
    save_plain_checkpoint(reference, tokenizer, source)
    examples = calibration_examples(tokenizer, settings["samples"], settings["sample_tokens"], settings["seed"])
    run_child(f"{__name__}:build_checkpoint", {
        "folder": str(folder), "algorithm": algorithm, "bits": settings["bits"], "group_size": settings["group_size"],
        "device": device.torch_name, "examples": examples,
    }, what=f"{algorithm} quantization of {source} (child process)", progress=progress)
    (folder / "calibration.json").write_text(json.dumps({"text": CALIBRATION_TEXT, **settings}, indent=1))
    for item in source.iterdir():  # the fp copy was only the quantizer's input
        item.unlink()
    source.rmdir()


def build_checkpoint(job: dict[str, Any], report: Any) -> dict[str, Any]:
    """In the child: GPTQModel quantizes ``folder/reference`` into ``folder/quantized``, reporting
    each decoder layer as GPTQModel starts it (a forward pre-hook per layer: public torch API)."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
    from gptqmodel import GPTQModel, QuantizeConfig

    folder = Path(job["folder"])
    gptqmodel_log_dir(folder / "logs")  # keep the quantization log with the checkpoint it describes
    config = QuantizeConfig(bits=job["bits"], group_size=job["group_size"], quant_method=job["algorithm"])
    model = GPTQModel.load(str(folder / "reference"), config, device=job["device"])
    layers = decoder_layers(model.model)
    report(0, len(layers), "layer")
    with layer_reports(layers, lambda index: report(index, len(layers), "layer")):
        model.quantize(job["examples"], batch_size=1)
    report(len(layers), len(layers), "layer")
    model.save(str(folder / "quantized"))
    return {"layers": len(layers)}


def decoder_layers(model: Any) -> list[Any]:
    """The model's stack of decoder layers: its longest ``nn.ModuleList``."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


@contextlib.contextmanager
def layer_reports(layers: list[Any], started: Callable[[int], None]) -> Iterator[None]:
    """``started(i)`` once, when layer ``i`` first runs (its layers before it are done)."""
    seen: set[int] = set()

    def hook(index: int) -> Callable[..., None]:
        def pre(module: Any, args: Any) -> None:
            if index not in seen:
                seen.add(index)
                started(index)
        return pre

    handles = [layer.register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True, slots=True)
class GptqModelMethod(MethodDefaults):
    algorithm: str  # "gptq" or "awq"

    def unsupported(self, device: Device) -> str | None:
        if importlib.util.find_spec("gptqmodel") is None:
            return INSTALL_HINT
        if self.algorithm == "awq" and not device.is_cuda:
            # GPTQModel 7.7's AWQ clip search asserts on small projection shapes on CPU, and its
            # fast AWQ kernels are GPU kernels: AWQ is a GPU method in this project.
            return "AWQ runs on CUDA devices only here (GPTQModel's AWQ kernels are GPU kernels)"
        return None

    def apply(self, reference: Any, spec: QuantSpec, device: Device, tokenizer: Any = None,
              progress: Progress | None = None) -> Variant:
        # GPTQModel sizes a CPU thread pool at half the cores and then asks it for 2 loader workers,
        # which fails on 2-core machines; 2 workers is also what it uses on larger ones.
        os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
        import gptqmodel

        settings = _settings(spec)
        facts: dict[str, Any] = {"library": f"GPTQModel {gptqmodel.__version__}"}
        if settings["checkpoint"]:
            path = Path(str(settings["checkpoint"])).expanduser()
            facts["checkpoint"] = str(path)
        else:
            if tokenizer is None:
                raise QuantizationError(f"{self.algorithm} calibrates on text: quantize() needs the reference's tokenizer")
            key = stable_id({"weights": weights_digest(reference), "settings": settings,
                             "gptqmodel": gptqmodel.__version__, "device": device.kind})
            folder = cache_dir() / self.algorithm / key
            if not (folder / "quantized").is_dir():
                started = time.perf_counter()
                publish_folder(folder, lambda temp: _quantize_into(temp, reference, tokenizer, self.algorithm,
                                                                   settings, device, progress))
                facts["quantize_s"] = round(time.perf_counter() - started, 1)
            path = folder / "quantized"
            facts["calibration"] = {"text": CALIBRATION_TEXT, "samples": settings["samples"],
                                    "sample_tokens": settings["sample_tokens"], "seed": settings["seed"]}
            facts["cache"] = str(folder)
        quant_config = checkpoint_quant_config(path, self.algorithm)
        model = gptqmodel.GPTQModel.load(str(path), device=device.torch_name).model
        kernels = sorted({type(m).__name__ for m in model.modules() if hasattr(m, "qweight")})
        facts.update({"weight_bits": quant_config.get("bits"), "group_size": quant_config.get("group_size"),
                      "activation_bits": None, "kernels": kernels, "dtype": str(next(model.parameters()).dtype),
                      "lm_head": "kept in the model dtype" if not quant_config.get("lm_head") else "quantized"})
        return Variant(model, facts)


for _algorithm in ("gptq", "awq"):
    quant_methods.register(_algorithm, GptqModelMethod(_algorithm))
