"""The ground floor: what every stage uses and nothing above it defines (docs/architecture.md)."""
