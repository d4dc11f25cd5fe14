"""Evolis escape-command language (see PROTOCOL.md in this folder for sources)."""
