"""A real OpenAI-compatible server for the serving path: ``transformers serve`` on 127.0.0.1.

The session's model is saved once as a plain folder (docs/architecture.md: the GGUF quantizer is
cleared before ``save_pretrained``), served on a free port, waited for until ``/health`` answers, and
stopped by its own process group at the end. ``--inferlab-server-url`` points at a running server
instead (vLLM's, anyone's): then nothing is started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_inferlab.record.jsonio import publish_folder
from pytest_inferlab.engines.sources import cache_dir

READY_TIMEOUT_S = 180.0


class ServerError(RuntimeError):
    """The local server could not start or died; the message carries its log's tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def plain_folder(engine: Any) -> Path:
    """The engine's model and tokenizer saved as a folder a server loads (cached per model spec)."""
    folder = cache_dir() / "served" / engine.info.model.spec_id
    if (folder / "config.json").is_file():
        return folder

    def save(target: Path) -> None:
        model = engine.module
        quantizer = getattr(model, "hf_quantizer", None)
        config_quant = getattr(model.config, "quantization_config", None)
        model.hf_quantizer = None  # GGUF weights were dequantized on load: save them as plain tensors
        if config_quant is not None:
            del model.config.quantization_config
        try:
            model.save_pretrained(target)
            engine.tokenizer.save_pretrained(target)
        finally:
            model.hf_quantizer = quantizer
            if config_quant is not None:
                model.config.quantization_config = config_quant

    publish_folder(folder, save)
    return folder


def serve_command() -> list[str]:
    cli = Path(sys.executable).with_name("transformers")
    return [str(cli)] if cli.exists() else [shutil.which("transformers") or "transformers"]


@dataclass
class LocalServer:
    """A ``transformers serve`` process of this session."""

    folder: Path
    device: str = "cpu"
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> "LocalServer":
        hub_cache = cache_dir() / "hf-hub"
        hub_cache.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_path or cache_dir() / "served" / f"server-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*serve_command(), "serve", str(self.folder), "--host", "127.0.0.1", "--port", str(self.port),
                 "--device", self.device], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        import httpx

        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"the server exited with code {self.process.returncode} before it was ready; "
                                  f"its log ({self.log_path}):\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"the server did not answer {self.url}/health within {timeout_s:.0f} s; its log:\n"
                          f"{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return "(no log)"

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the server by its own process group (never by name): TERM, then KILL."""
        if self.process is None or self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(grace_s)
