import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

pytest_plugins = ["pytester"]


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "error")
    # gguf and transformers' GGUF loader emit deprecation noise we do not own
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")
