"""The package's version, importable without the public API it is part of."""

__version__ = "0.1.0"
