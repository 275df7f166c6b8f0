"""PyBT's version, in one place (the package, run folders and reports read it from here)."""

__version__ = "0.5.0"
