"""The one ``NAME=VALUE`` list parser behind every option that takes one (SLOs, tolerances)."""

from __future__ import annotations


def parse_assignments(text: str, source: str, form: str) -> dict[str, str]:
    """``"a=1 b=2"`` (spaces, commas or new lines) -> {"a": "1", "b": "2"}; values stay text for the
    caller to convert. ``form`` says what an item looks like, for the error naming ``source``."""
    out: dict[str, str] = {}
    for item in str(text).replace(",", " ").split():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"{source}: {item!r} is not {form}")
        if name in out:
            raise ValueError(f"{source}: {name} is given twice ({out[name]} and {value})")
        out[name] = value
    return out
