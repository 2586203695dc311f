"""Probes read the machine around a case: memory, energy. Each says why when it cannot."""
