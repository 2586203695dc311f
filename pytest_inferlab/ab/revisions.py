"""The two trees of an A/B run: a git worktree of the base revision, and the working tree as it is."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


class ABError(ValueError):
    """Bad input for an A/B run (not a checkout, not a revision...); the message says what to do."""


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ABError(f"git {' '.join(args)} failed in {root}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


@dataclass(frozen=True, slots=True)
class Revisions:
    """What is compared: ``base`` (a commit) against the working tree at ``root``."""

    root: Path  # top of the working tree (the candidate)
    base: str  # the revision as the user named it
    base_commit: str  # its full hash
    head_commit: str
    dirty_files: tuple[str, ...]  # uncommitted changes of the candidate (they are part of it)

    def candidate_label(self) -> str:
        label = f"working tree at {self.head_commit[:8]}"
        return f"{label} + uncommitted changes in {len(self.dirty_files)} file(s)" if self.dirty_files else label


def resolve(start: Path, base: str) -> Revisions:
    """``base`` in the checkout that holds ``start``; errors name the revision and the folder."""
    try:
        root = Path(git(start, "rev-parse", "--show-toplevel"))
    except ABError:
        raise ABError(f"{start} is not inside a git checkout: an A/B run compares a revision with the working tree "
                      "of a checkout") from None
    try:
        commit = git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    except ABError:
        raise ABError(f"BASE {base!r} is not a revision of {root} (try a branch, a tag, HEAD~1 or a commit hash; "
                      "in a shallow CI checkout, fetch the base first)") from None
    dirty = tuple(name for name in git(root, "diff", "--name-only", "HEAD").splitlines() if name)  # staged or not
    return Revisions(root, base, commit, git(root, "rev-parse", "HEAD"), dirty)


class BaseWorktree:
    """``git worktree add --detach`` of the base commit in ``folder``, removed on exit (a worktree left by a
    run that was killed is pruned first)."""

    def __init__(self, revisions: Revisions, folder: Path) -> None:
        self.revisions, self.folder = revisions, folder

    def __enter__(self) -> Path:
        git(self.revisions.root, "worktree", "prune")
        if self.folder.exists():
            raise ABError(f"{self.folder} exists already: remove it (a worktree of an earlier A/B run?)")
        git(self.revisions.root, "worktree", "add", "--detach", "--quiet", str(self.folder), self.revisions.base_commit)
        return self.folder

    def __exit__(self, *exc: object) -> None:
        try:
            git(self.revisions.root, "worktree", "remove", "--force", str(self.folder))
        except ABError:
            pass
