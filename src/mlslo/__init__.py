"""mlslo: SRE error budgets for ML systems."""

__version__ = "0.1.0"
