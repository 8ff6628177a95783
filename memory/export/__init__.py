"""Exporting a design: one standalone module that needs only torch, with its provenance in the docstring,
and recognising such a module when it comes back.

    from memory.export import export_design, export_source, standalone
"""

from memory.export.bundle import Export, ExportError, standalone
from memory.export.card import card, export_design, export_source

__all__ = ["Export", "ExportError", "card", "export_design", "export_source", "standalone"]
