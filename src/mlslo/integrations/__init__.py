"""Integrations with model-serving frameworks."""
