"""The order of a pair of rounds: A B, then B A, then A B... (the B C C B alternation of paired
measurements), so neither side always runs first and a host that warms up or slows down over a case
favours neither. One definition for every paired measurement: a candidate and its reference, drafted
and undrafted, recorded and bare, an A/B run's base and candidate."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def pair_order(index: int, first: T, second: T) -> tuple[T, T]:
    """The two sides of pair ``index`` (0-based) in the order they run: ``first`` leads even pairs."""
    return (first, second) if index % 2 == 0 else (second, first)
