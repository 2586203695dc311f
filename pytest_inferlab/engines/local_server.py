"""A real OpenAI-compatible server for the serving path, started on 127.0.0.1 (``--inferlab-server``).

Two kinds, in the ``server_kinds`` registry: ``transformers`` (``transformers serve`` on the
session's model saved once as a plain folder; docs/architecture.md: the GGUF quantizer is cleared
before ``save_pretrained``) and ``llamacpp`` (llama-cpp-python's ``python -m llama_cpp.server`` on
the model's GGUF file). Either is started on a free port in its own process group, waited for until
it answers, and stopped by that group at the end. ``--inferlab-server-url`` points at a running
server instead (vLLM's, llama.cpp's ``llama-server --metrics``, anyone's): then nothing is started.
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
from typing import Any, Protocol

from pytest_inferlab.ground.jsonio import publish_folder
from pytest_inferlab.registry import Registry
from pytest_inferlab.engines.sources import cache_dir, save_plain

READY_TIMEOUT_S = 180.0


class ServerError(RuntimeError):
    """The local server could not start or died; the message carries its log's tail."""


class ServerUnsupported(ServerError):
    """The chosen kind of server cannot serve this model here (the cases skip with the reason)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def plain_folder(engine: Any) -> Path:
    """The engine's model and tokenizer saved as a folder a server loads (cached per model spec)."""
    folder = cache_dir() / "served" / engine.info.model.spec_id
    if not (folder / "config.json").is_file():
        publish_folder(folder, lambda target: save_plain(engine.module, engine.tokenizer, target))
    return folder


def serve_command() -> list[str]:
    cli = Path(sys.executable).with_name("transformers")
    return [str(cli)] if cli.exists() else [shutil.which("transformers") or "transformers"]


class ServerKind(Protocol):
    """How one kind of server is started: what it serves, its command line, when it is ready."""

    ready_path: str  # answers 200 once the model is loaded

    def unsupported(self, engine: Any, device: str) -> str | None:
        """Why this kind cannot serve ``engine``'s model on ``device`` (a clear reason), or None."""

    def served(self, engine: Any) -> str:
        """The folder or file the server loads; requests name it as their model."""

    def command(self, served: str, port: int, device: str, threads: int) -> list[str]:
        """The command line serving ``served`` on 127.0.0.1:``port``."""

    def facts(self, threads: int) -> dict[str, Any]:
        """What the records say about this server (its settings)."""


@dataclass(frozen=True, slots=True)
class TransformersServe:
    ready_path: str = "/health"

    def unsupported(self, engine: Any, device: str) -> str | None:
        return None

    def served(self, engine: Any) -> str:
        return str(plain_folder(engine))

    def command(self, served: str, port: int, device: str, threads: int) -> list[str]:
        return [*serve_command(), "serve", served, "--host", "127.0.0.1", "--port", str(port), "--device", device]

    def facts(self, threads: int) -> dict[str, Any]:
        return {"server": "transformers serve"}


@dataclass(frozen=True, slots=True)
class LlamaCppServe:
    """llama-cpp-python's server: one ``Llama``, requests served one at a time (its lock), the KV of
    the last sequence's prompt prefix reused (the server has no switch for it: the record says so).
    Its requests are never interrupted by the next one (``--interrupt_requests false``; the default
    would cut a stream short whenever another request arrives). It exposes no ``/metrics``
    (llama.cpp's C++ ``llama-server --metrics`` does: point ``--inferlab-server-url`` at one)."""

    ready_path: str = "/v1/models"
    context: int = 4096

    def unsupported(self, engine: Any, device: str) -> str | None:
        from pytest_inferlab.engines.llamacpp_engine import llamacpp_missing

        if device != "cpu":
            return "--inferlab-server=llamacpp runs on the CPU here (this llama-cpp-python build has no GPU offload)"
        missing = llamacpp_missing()
        if missing:
            return f"--inferlab-server=llamacpp {missing}"
        if engine.info.model.source not in ("gguf", "embedded"):
            return (f"--inferlab-server=llamacpp serves a GGUF file; --inferlab-model={engine.info.model.name} is "
                    "not one (use PATH.gguf or the embedded smollm2-135m)")
        return None

    def served(self, engine: Any) -> str:
        from pytest_inferlab.engines.sources import gguf_path_of

        return str(gguf_path_of(engine.info.model))

    def command(self, served: str, port: int, device: str, threads: int) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", served, "--host", "127.0.0.1", "--port", str(port),
                "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", str(self.context),
                "--logits_all", "false", "--interrupt_requests", "false", "--verbose", "false"]

    def facts(self, threads: int) -> dict[str, Any]:
        return {"server": "llama_cpp.server", "threads": threads, "context": self.context,
                "prefix_reuse": "on (llama-cpp-python's server reuses the last prompt's prefix)",
                "concurrency": "one request at a time", "metrics": None}


server_kinds: Registry[ServerKind] = Registry("servers")
server_kinds.register("transformers", TransformersServe())
server_kinds.register("llamacpp", LlamaCppServe())


@dataclass
class LocalServer:
    """A server process of this session (``kind`` from ``server_kinds``) serving ``served``."""

    served: str
    kind: str = "transformers"
    device: str = "cpu"
    threads: int = 2
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def facts(self) -> dict[str, Any]:
        return {"kind": self.kind, **server_kinds.get(self.kind).facts(self.threads)}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> "LocalServer":
        hub_cache = cache_dir() / "hf-hub"
        hub_cache.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_path or cache_dir() / "served" / f"server-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"}
        argv = server_kinds.get(self.kind).command(self.served, self.port, self.device, self.threads)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        import httpx

        ready = f"{self.url}{server_kinds.get(self.kind).ready_path}"
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"the server exited with code {self.process.returncode} before it was ready; "
                                  f"its log ({self.log_path}):\n{self.log_tail()}")
            try:
                if httpx.get(ready, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"the server did not answer {ready} within {timeout_s:.0f} s; its log:\n"
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
