"""The version, in a module of its own that imports nothing: run.py and the exporter record it."""

__version__ = "0.1.0"
