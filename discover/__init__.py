"""Discover: autonomous discovery of efficient sequence-mixer architectures."""

__version__ = "0.1.0"
