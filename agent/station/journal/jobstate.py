"""A job's states at this station, and the only moves between them.

Every UPDATE of a job's state is guarded by `moves(to, *from)`, which refuses at import time
a move the table below does not allow, and gives the SQL that makes the move only from
those states: a thread that finds the job moved meanwhile (an operator's cancel during a
claim, a hand-back during a card's start) changes nothing and publishes nothing.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """A job's state in the journal (the contract's statuses, and three of the station's)."""

    CLAIMING = "claiming"  # a pool delivery acknowledged in a transaction not yet committed
    QUEUED = "queued"
    PRINTING = "printing"  # its blank is (or may be) in the printer
    NEEDS_CHECK = "needs_check"
    HANDING_BACK = "handing_back"  # a pool job waiting to go back to the central system
    HANDBACK_SENDING = "handback_sending"  # its publication was attempted: never again
    PRINTED = "printed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RELEASED = "released"  # the central system's again


S = JobState
#: Not yet ended: the job's data is still held.
LIVE = frozenset({S.CLAIMING, S.QUEUED, S.PRINTING, S.NEEDS_CHECK, S.HANDING_BACK,
                  S.HANDBACK_SENDING})
#: States whose row keeps only the job's id and outcome (pruned after the retention period).
ENDED = frozenset(JobState) - LIVE
#: What the printer thread has still to print, or is printing.
WAITING = (S.QUEUED, S.PRINTING)

#: state -> the states it may move to.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.CLAIMING: frozenset({S.QUEUED, S.CANCELLED, S.RELEASED, S.FAILED, S.EXPIRED}),
    S.QUEUED: frozenset({S.PRINTING, S.CANCELLED, S.HANDING_BACK, S.RELEASED, S.FAILED,
                         S.EXPIRED}),
    # To cancelled: only a job armed to print next whose blank was never drawn
    # (`ArmedJobs.withdraw`).
    S.PRINTING: frozenset({S.PRINTED, S.QUEUED, S.NEEDS_CHECK, S.FAILED, S.EXPIRED,
                           S.CANCELLED}),
    S.NEEDS_CHECK: frozenset({S.PRINTED, S.FAILED, S.EXPIRED}),
    S.HANDING_BACK: frozenset({S.HANDBACK_SENDING, S.CANCELLED, S.RELEASED}),
    S.HANDBACK_SENDING: frozenset({S.RELEASED}),
    **{s: frozenset() for s in ENDED},
}


def moves(to: JobState, *sources: JobState) -> tuple[str, tuple[str, ...]]:
    """The SQL guard `state IN (...)` and its parameters for a move to `to` from `sources`.

    Raises ValueError for a move the table does not allow: every guard is checked once,
    when the module that writes it is imported.
    """
    for source in sources:
        if to not in TRANSITIONS[source]:
            raise ValueError(f"a job cannot move from {source} to {to}")
    return f"state IN ({', '.join('?' * len(sources))})", tuple(sources)
