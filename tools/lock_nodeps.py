"""Write requirements/nodeps.txt: the --no-deps installs of requirements/nodeps.in, pinned with hashes.

pip-compile resolves dependencies, which these packages must not pull in (GPTQModel would pull a CUDA
torch), so their files are fetched with ``pip download --no-deps`` and hashed here. Run by ``make lock``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE, TARGET = ROOT / "requirements" / "nodeps.in", ROOT / "requirements" / "nodeps.txt"


def requirements(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    specs = [line for line in lines if line]
    unpinned = [spec for spec in specs if "==" not in spec]
    if unpinned:
        sys.exit(f"{SOURCE}: pin every package with == ({', '.join(unpinned)})")
    return specs


def locked_lines(spec: str, folder: Path) -> list[str]:
    """``spec`` with the sha256 of the one file pip chooses for it on this kind of machine."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(folder), spec],
                   check=True)
    [file] = list(folder.iterdir())
    return [f"{spec} \\", f"    --hash=sha256:{hashlib.sha256(file.read_bytes()).hexdigest()}", f"    # {file.name}"]


def main() -> None:
    lines = ["# Written by tools/lock_nodeps.py (make lock) from requirements/nodeps.in; install with",
             "#   pip install --no-deps --require-hashes -r requirements/nodeps.txt"]
    with tempfile.TemporaryDirectory() as folder:
        for index, spec in enumerate(requirements(SOURCE.read_text())):
            (Path(folder) / str(index)).mkdir()
            lines += locked_lines(spec, Path(folder) / str(index))
    partial = TARGET.with_name(f".{TARGET.name}.tmp")
    partial.write_text("\n".join(lines) + "\n")
    os.replace(partial, TARGET)
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
