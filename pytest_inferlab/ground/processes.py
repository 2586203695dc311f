"""Processes that are part of what is measured (a local server, tensor-parallel ranks, the other side of
a lock-step A/B): the interference probe counts their CPU as the case's own, not as other load. Those
that start such a process add its pid; the probe (run/probes/interference.py) reads the set."""

from __future__ import annotations

MEASURED_PIDS: set[int] = set()

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def loopback_server_pid(url: str) -> int | None:
    """The pid of the process listening on ``url``'s port when ``url`` is on this machine (loopback)
    and that process is visible to this user; else None. A server the user started beside the lab
    shares its CPUs: its CPU time is the case's, not another process's interference."""
    from urllib.parse import urlsplit

    import psutil

    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        listening = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    return next((c.pid for c in listening if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                 and c.pid is not None), None)
