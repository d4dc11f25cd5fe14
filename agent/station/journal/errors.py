"""What goes wrong with the journal itself: its file, or another agent holding it."""

from __future__ import annotations


class JournalError(Exception):
    """The journal file cannot be used; the message says how to recover."""


class JournalLocked(JournalError):
    """Another agent holds this state folder (contract 7.8: one agent per journal)."""
