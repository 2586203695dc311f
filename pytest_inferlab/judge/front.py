"""The Pareto front: the items no other item beats on every objective. One definition for every
trade-off the lab shows (the quantization trade-off, the findings' speed x memory x fidelity front),
so "on the front" means the same wherever it is printed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Objective(Generic[T]):
    """One axis of a trade-off: an item's value on it, and which way is better."""

    value: Callable[[T], float]
    maximize: bool = True

    def no_worse(self, a: T, b: T) -> bool:
        return self.value(a) >= self.value(b) if self.maximize else self.value(a) <= self.value(b)

    def better(self, a: T, b: T) -> bool:
        return self.value(a) > self.value(b) if self.maximize else self.value(a) < self.value(b)


def dominates(a: T, b: T, objectives: Sequence[Objective[T]]) -> bool:
    """``a`` is at least as good as ``b`` on every objective and strictly better on one."""
    return all(o.no_worse(a, b) for o in objectives) and any(o.better(a, b) for o in objectives)


def pareto_front(items: Sequence[T], objectives: Sequence[Objective[T]]) -> list[T]:
    """The items no other item dominates, in their given order (ties on every axis all stay)."""
    return [item for item in items if not any(dominates(other, item, objectives) for other in items if other is not item)]
