import importlib

import pytest

# Libraries with C extensions that cannot be imported twice in one process: pytester's in-process runs
# (runpytest_inprocess) drop every module a run imported, so these are imported once, before any run,
# and the runs share them (a run in this process saves the 5-6 s a subprocess spends importing them).
SHARED = ("numpy", "scipy.stats", "torch", "transformers", "transformers.models.llama.modeling_llama",
          "tokenizers", "safetensors", "psutil", "aiohttp", "gguf", "pytest_benchmark.plugin")


@pytest.fixture(autouse=True, scope="session")
def libraries_imported_once():
    for name in SHARED:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library: runs that need it skip with their reason
            pass
