"""Exporting a design: one standalone module that needs only torch, with its provenance in the docstring.

    from memory.export import export_design, standalone
"""

from memory.export.bundle import Export, ExportError, standalone
from memory.export.card import card, export_design

__all__ = ["Export", "ExportError", "card", "export_design", "standalone"]
