"""The real `gatehouse` command against the whole system (tests/system.py), one system per module."""

from tests.system import system  # noqa: F401  (the module-scoped whole-system fixture)
