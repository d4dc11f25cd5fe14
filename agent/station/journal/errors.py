"""What goes wrong with the journal itself: its file, or another agent holding it."""

from __future__ import annotations

from printstation.drivers.errors import PrintstationError


class JournalError(PrintstationError):
    """The journal file cannot be used; the message says how to recover."""

    code = "journal"


class JournalLocked(JournalError):
    """Another agent holds this state folder (contract 7.8: one agent per journal)."""

    code = "journal_locked"
