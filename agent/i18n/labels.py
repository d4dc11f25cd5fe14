"""The words an operator reads for the codes the agent speaks in: a job's status, a blank's
outcome in the ledger, a printer fault, a consumable.

The codes stay in events, logs, `--json` and the contract; a surface shows the word, in the
process's language (`status("needs_check")` is "needs check" or "perlu diperiksa"). Every
surface takes the word from here, so a code is called the same everywhere (the glossary in
the catalogue's header). A code without a word here is shown as it is.
"""

from __future__ import annotations

from collections.abc import Mapping

from printstation.agent.i18n import N_, _, translations

#: Job states (the journal's and the contract's statuses).
STATUSES: Mapping[str, str] = {
    "claiming": N_("being taken from the pool"),
    "queued": N_("waiting"),
    "accepted": N_("accepted"),
    "printing": N_("printing"),
    "needs_check": N_("needs check"),
    "handing_back": N_("to be handed back"),
    "handback_sending": N_("being handed back"),
    "printed": N_("printed"),
    "failed": N_("failed"),
    "rejected": N_("rejected"),
    "cancelled": N_("cancelled"),
    "expired": N_("expired"),
    "released": N_("returned to the central system"),
}

#: What became of a blank that left the feeder (ledger outcomes, contract 4b).
OUTCOMES: Mapping[str, str] = {
    "issued": N_("printed"),
    "spoiled": N_("spoiled"),
    "test": N_("test print"),
    "removed": N_("taken out unprinted"),
}

#: Printer faults (`drivers.base.FaultCode`).
FAULTS: Mapping[str, str] = {
    "jam": N_("card jam"),
    "ribbon_out": N_("ribbon used up"),
    "film_out": N_("film used up"),
    "cover_open": N_("cover open"),
    "feeder_empty": N_("feeder empty"),
    "hopper_full": N_("output hopper full"),
    "offline": N_("printer offline"),
    "head_error": N_("print head error"),
    "protocol_error": N_("printer reply not understood"),
    "other": N_("other printer fault"),
    "encoder_fault": N_("chip reader fault"),
}

#: Consumables (`ConsumableLevel.kind`) and the cleaning counter.
CONSUMABLES: Mapping[str, str] = {
    "ribbon": N_("ribbon"),
    "film": N_("film"),
    "cards": N_("blanks"),
    "cleaning": N_("cleaning"),
}


def word(table: Mapping[str, str], code: str, language: str | None = None) -> str:
    """The word for `code` in `table`, in `language` (default: the process's); the code
    itself when it has none."""
    english = table.get(code)
    if english is None:
        return code
    return _(english) if language is None else translations(language).gettext(english)


def status(code: str, language: str | None = None) -> str:
    return word(STATUSES, code, language)


def outcome(code: str, language: str | None = None) -> str:
    return word(OUTCOMES, code, language)


def fault(code: str, language: str | None = None) -> str:
    return word(FAULTS, code, language)


def consumable(code: str, language: str | None = None) -> str:
    return word(CONSUMABLES, code, language)
