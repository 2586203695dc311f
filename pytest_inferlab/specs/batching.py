"""How requests that arrive over time are grouped onto the model (run/batching/ serves them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_inferlab.specs.core import NamedSettings


@dataclass(frozen=True, slots=True)
class BatchingSpec(NamedSettings):
    """A batching engine and its settings (``max_batch``; continuous: ``page_size``, ``num_blocks``,
    ``max_batch_tokens``)."""

    NAME_FIELD: ClassVar[str] = "kind"
    kind: str
    settings: tuple[tuple[str, Any], ...] = ()

    def setting(self, name: str, default: Any) -> Any:
        return dict(self.settings).get(name, default)
