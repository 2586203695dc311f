"""Engines: backends behind one protocol (``base.Engine``), the registry that finds them, the model
sources they load from, and the factory that builds, caches and closes them for a run."""

from pytest_inferlab.engines.base import (Engine, EngineCapabilityError, EngineInfo, KVUsage, encode_prompt, engines,
                                          load_engine)

__all__ = ["Engine", "EngineCapabilityError", "EngineInfo", "KVUsage", "encode_prompt", "engines", "load_engine"]
