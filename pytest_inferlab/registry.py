"""A typed registry per axis (model sources, engines, workloads, metrics).

Users extend an axis with a decorator, a lazy ``"package.module:attr"`` string, or an entry
point in the group ``pytest_inferlab.<axis>``, instead of editing an ``if`` chain.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
Placeholder = str | md.EntryPoint


class UnknownNameError(KeyError):
    """An unknown registry key; the message lists the known names and close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Names -> objects of one axis, with lazy targets and did-you-mean errors."""

    def __init__(self, axis: str, *, base_cls: type | None = None) -> None:
        self.axis = axis
        self._base_cls = base_cls
        self._items: dict[str, T | Placeholder] = {}
        self._frozen = False
        self._entry_points_loaded = False

    def register(self, name: str, target: T | Placeholder | None = None) -> Callable[[T], T] | T:
        """Register ``target`` under ``name``; without a target, act as a decorator."""
        if target is not None:
            self._put(name, target)
            return target

        def decorate(obj: T) -> T:
            self._put(name, obj)
            return obj

        return decorate

    def _put(self, name: str, target: T | Placeholder) -> None:
        if self._frozen:
            raise RuntimeError(f"the {self.axis} registry is frozen; register before the session starts")
        if name in self._items and self._items[name] is not target:
            raise ValueError(f"{self.axis} {name!r} is already registered")
        self._items[name] = target

    def get(self, name: str) -> T:
        """The object registered as ``name`` (lazy targets are imported now)."""
        self._load_entry_points()
        try:
            target = self._items[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None
        if isinstance(target, (str, md.EntryPoint)):
            target = self._materialize(name, target)
            self._items[name] = target
        return target

    def _materialize(self, name: str, target: Placeholder) -> T:
        if isinstance(target, md.EntryPoint):
            obj = target.load()
        else:
            module_name, _, attr = target.partition(":")
            obj = getattr(importlib.import_module(module_name), attr)
        if self._base_cls is not None and isinstance(obj, type) and not issubclass(obj, self._base_cls):
            raise TypeError(f"{self.axis} {name!r} -> {obj!r} is not a {self._base_cls.__name__}")
        return obj

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._items)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        return f"unknown {self.axis} {name!r}.{hint} Known: {', '.join(known) or '(none)'}"

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in md.entry_points(group=f"pytest_inferlab.{self.axis}"):
            self._items.setdefault(ep.name, ep)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def freeze(self) -> None:
        self._frozen = True

    def resolve(self, value: Any, spec_cls: type) -> Any:
        """The one resolver behind the indirect fixtures: ``value`` is a spec of ``spec_cls`` or a
        name (``spec_cls.of(name)``), and the spec's name must be registered here (else an
        UnknownNameError with did-you-mean)."""
        spec = value if isinstance(value, spec_cls) else spec_cls.of(str(value))
        self.get(getattr(spec, spec_cls.NAME_FIELD))
        return spec
