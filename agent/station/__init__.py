"""The station core: what the agent does with a job from the moment it is stored.

    agent        wiring and lifecycle: builds the parts, starts them, reloads, stops them
                 in order (`components`)
    station      the parts as they see each other; its state (`state`, pure functions)
    intake       one inbound message checked, stored, and answered (`storefault` when the
                 journal cannot store)
    journal/     every job, card and outbound event in one SQLite file, by concern
    printing/    the printer thread, the one owner of the driver
    recovery     what the journal held at the last stop, settled before any job is taken
    consumables  ribbon, film and blanks: the printer's readings and the agent's count
    forecast     how many cards are left, and when each consumable runs out
    ledger       every blank given to the station, and where it went
    telemetry    telemetry and the alert conditions (`conditions`, `alerts`)
    actions      the operators' commands, as a table of typed requests
    view         the read-only view the operator page and the metrics get
"""
