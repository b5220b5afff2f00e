"""Importers: trees written by other looms, turned into loomtui trees."""

from loomtui.core.importers.pyloom import import_pyloom, load_pyloom

__all__ = ["import_pyloom", "load_pyloom"]
