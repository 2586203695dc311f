"""Lock-step turns for the two processes of an A/B run (``inferlab ab``): one side runs at a time.

Each side is a pytest process measuring the same cases in the same order. It holds the baton from a
"go" until its next request; a request is sent before every case (``begin``), before every round
(warm-up and timed) and after every case (``end``). So nothing of one side, neither a timed round
nor the work between rounds (model loading, enrichment), overlaps anything of the other, and the
coordinator decides the order: the side that is behind goes first, and when both wait at the same
round, base goes first on even rounds and the candidate on odd ones (B C C B B C ...), so a drift
of the machine within a pair hits both sides alike.

The protocol is JSON lines over a Unix socket: a side sends ``{"side": ...}`` once, then
``{"kind": "begin"|"round"|"end", "case": nodeid, "index": i}`` and reads ``go`` before going on.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from pytest_inferlab.ground.alternation import pair_order

SIDES = ("base", "candidate")
PHASES = {"begin": 0, "round": 1, "end": 2}


class LockstepError(RuntimeError):
    """The coordinator went away or spoke out of turn: the side cannot go on measuring in lock-step."""


@dataclass(frozen=True, slots=True, order=True)
class Turn:
    """Where a side wants to go next, comparable across sides: (case, phase, round)."""

    case: int  # position of the case in the shared order (unknown cases sort last)
    phase: int  # PHASES
    index: int = 0  # round within the case (warm-up rounds included)


def choose(base: Turn, candidate: Turn) -> str:
    """The side that goes next when both wait: the one behind; at the same round, base on even rounds."""
    if base != candidate:
        return "base" if base < candidate else "candidate"
    return pair_order(base.index, "base", "candidate")[0]


@dataclass
class Baton:
    """The coordinator's state: who holds the baton, who waits for what, who is gone."""

    cases: Sequence[str]
    grants: list[tuple[str, str, str, int, float]] = field(default_factory=list)  # side, kind, case, index, time
    _holder: str | None = None
    _waiting: dict[str, Turn] = field(default_factory=dict)
    _alive: set[str] = field(default_factory=lambda: set(SIDES))
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def turn_of(self, kind: str, case: str, index: int) -> Turn:
        position = self.cases.index(case) if case in self.cases else len(self.cases)
        return Turn(position, PHASES[kind], index)

    def request(self, side: str, kind: str, case: str, index: int) -> None:
        """Block until ``side`` may go on (it gives the baton back by asking)."""
        with self._cond:
            if self._holder == side:
                self._holder = None
            self._waiting[side] = self.turn_of(kind, case, index)
            self._grant()
            while self._holder != side:
                self._cond.wait()
            self.grants.append((side, kind, case, index, time.perf_counter()))

    def gone(self, side: str) -> None:
        """``side`` ended (or died): the other goes on alone."""
        with self._cond:
            self._alive.discard(side)
            self._waiting.pop(side, None)
            if self._holder == side:
                self._holder = None
            self._grant()

    def _grant(self) -> None:
        # Nothing is granted while a live side has not asked yet (it is still starting: importing,
        # collecting): its start-up would overlap the other's rounds.
        if self._holder is not None or not self._waiting or set(self._waiting) != self._alive:
            return
        if len(self._waiting) == 1:
            [self._holder] = self._waiting
        else:
            self._holder = choose(self._waiting["base"], self._waiting["candidate"])
        del self._waiting[self._holder]
        self._cond.notify_all()


class TurnServer:
    """Serves a ``Baton`` on a Unix socket to the two sides (a thread per side)."""

    def __init__(self, path: Path, baton: Baton) -> None:
        self.path, self.baton = path, baton
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(2)
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, name="inferlab-ab-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            thread = threading.Thread(target=self._serve, args=(connection,), name="inferlab-ab-side", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket) -> None:
        side = None
        with connection, connection.makefile("rw", encoding="utf-8", newline="\n") as stream:
            try:
                side = json.loads(stream.readline())["side"]
                if side not in SIDES:
                    return
                for line in stream:
                    message = json.loads(line)
                    self.baton.request(side, message["kind"], message["case"], int(message["index"]))
                    stream.write("go\n")
                    stream.flush()
            except (OSError, ValueError, KeyError):
                pass
            finally:
                if side in SIDES:
                    self.baton.gone(side)

    def close(self) -> None:
        self._listener.close()
        self.path.unlink(missing_ok=True)


class TurnClient:
    """A side's end of the protocol: ``wait`` blocks until the coordinator says go."""

    def __init__(self, path: str, side: str) -> None:
        if side not in SIDES:
            raise LockstepError(f"side {side!r}: expected one of {', '.join(SIDES)}")
        self.side = side
        try:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._socket.connect(path)
        except OSError as exc:
            raise LockstepError(f"cannot reach the A/B coordinator at {path}: {exc}") from exc
        self._stream = self._socket.makefile("rw", encoding="utf-8", newline="\n")
        self._send({"side": side})

    def _send(self, message: dict) -> None:
        try:
            self._stream.write(json.dumps(message) + "\n")
            self._stream.flush()
        except OSError as exc:
            raise LockstepError(f"the A/B coordinator went away: {exc}") from exc

    def wait(self, kind: str, case: str, index: int = 0) -> None:
        self._send({"kind": kind, "case": case, "index": index})
        answer = self._stream.readline()
        if answer.strip() != "go":
            raise LockstepError(f"the A/B coordinator went away while {self.side} waited for its turn at {case}")

    def close(self) -> None:
        self._stream.close()
        self._socket.close()
