"""JSON files: read with errors naming the file; write whole or not at all.

Writes go to a temp file in the same folder, are fsynced, then published by an atomic link
(never overwriting) or an atomic replace (for files meant to be updated).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


def read_json_object(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """The JSON object in ``path``; anything else raises ``error`` naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what} {path} is unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise error(f"{what} {path}: expected a JSON object")
    return data


TEMP_PREFIX = ".tmp-"  # temporary files: hidden, never read as records or baselines


def json_lines(lines: Iterable[str], name: str, error: type[Exception], hint: str = "") -> Iterator[tuple[str, Any]]:
    """Each non-blank line of a JSONL file parsed, with where it stands (``name:line``); a line that is
    not JSON raises ``error`` naming it (``hint`` says what a line must be)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}: not JSON ({exc.msg}){hint}") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files owner-only (0600); published files get the modes the user's umask gives
# (0644 typically), so a CI uploader or the asv site's web server can read them.
FILE_MODE = 0o666 & ~_umask()


def _fsynced_temp(folder: Path, text: str) -> Path:
    """``.tmp-<pid>-*.json`` in ``folder``, written whole and fsynced; the pid tells a later run
    whether its writer is still alive (``remove_stale_temps``)."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), FILE_MODE)
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(name)


def is_temp(path: Path) -> bool:
    return path.name.startswith(TEMP_PREFIX)


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(folder: Path, recursive: bool = True) -> list[Path]:
    """Remove temporary files left by writers that died mid-write (SIGKILL, power loss); files of
    live writers (xdist workers, a concurrent save) are kept. Returns what was removed."""
    if not folder.is_dir():
        return []
    removed = []
    for path in (folder.rglob if recursive else folder.glob)(f"{TEMP_PREFIX}*"):
        pid = path.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if path.is_file() and not (pid.isdigit() and _writer_alive(int(pid))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def write_json_new(path: Path, data: Any) -> Path:
    """Write ``data`` to ``path`` or, if taken, ``path-2``, ``path-3``...; returns the path used.

    ``os.link`` publishes the complete temp file under the final name and fails if the name
    exists, so concurrent writers (xdist workers) never overwrite or interleave each other.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _fsynced_temp(path.parent, json.dumps(data, indent=1, allow_nan=False) + "\n")
    try:
        for attempt in range(1, 1000):
            target = path if attempt == 1 else path.with_name(f"{path.stem}-{attempt}{path.suffix}")
            try:
                os.link(temp, target)
                return target
            except FileExistsError:
                continue
        raise FileExistsError(f"{path}: 999 records with this name already exist")
    finally:
        temp.unlink()


def write_text_replace(path: Path, text: str) -> None:
    """Atomically replace ``path`` (files meant to be updated): old or new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(_fsynced_temp(path.parent, text), path)


def write_text_if_absent(path: Path, text: str) -> bool:
    """Publish ``path`` whole unless it exists (then it is kept: another writer was first); True if written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _fsynced_temp(path.parent, text)
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    finally:
        temp.unlink()


def write_json_replace(path: Path, data: Any) -> None:
    """Atomically replace a JSON file meant to be updated (e.g. baselines)."""
    write_text_replace(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def write_json_replace_all(files: dict[Path, Any]) -> None:
    """Replace several JSON files together: every one is written whole (and fsynced) to a temporary
    file first, and only then are they renamed into place, so a failure while writing (a full disk,
    data that is not JSON) changes none of them."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temps.append((_fsynced_temp(path.parent, json.dumps(data, indent=1, allow_nan=False) + "\n"), path))
        for temp, path in temps:
            os.replace(temp, path)
    finally:
        for temp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def publish_folder(target: Path, fill: Callable[[Path], None]) -> bool:
    """Build a folder whole or not at all: ``fill`` writes into a temporary sibling, which is then
    renamed to ``target``. False when another process published ``target`` first (theirs is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as temp:
        fill(Path(temp))
        os.chmod(temp, 0o777 & ~_umask())  # TemporaryDirectory is owner-only; published folders follow the umask
        try:
            os.replace(temp, target)
        except OSError:
            if not target.is_dir():
                raise
            return False
        os.mkdir(temp)  # TemporaryDirectory removes its folder on exit; give it an empty one
    return True
