"""What the operators' commands print: states and faults in words, a check's block within
80 columns, and actions answered in a sentence."""

from __future__ import annotations

from printstation.agent.surfaces.operator_cli import answer_words, format_status


def _status(state: str, printer_state: str, faults: list[str]) -> dict:
    return {"telemetry": {
        "state": state, "blocked_reason": None, "queued_jobs": 2, "taking_jobs": True,
        "printer": {"model": "Primacy", "serial": "S1", "state": printer_state,
                    "faults": faults},
        "consumables": [], "alerts": [
            {"condition": "needs_check_J-1", "severity": "warning", "message": "long"},
            {"condition": "cleaning_due", "severity": "warning", "message": "Cleaning due"}]},
        "needs_check": [{
            "job_id": "J-1", "reference": "PERMOHONAN-1", "since": "2026-03-02T03:14:09+00:00",
            "attempt": 1, "counter_before": 41, "counter_now": 42, "drawn_since": 1,
            "printer_said": "the link to the printer broke while the card was inside "
                            "(printer at 127.0.0.1:9100 closed the connection)",
            "advice": "x " * 90}]}


def test_status_says_the_printer_prints_while_the_station_prints_and_faults_in_words():
    lines = format_status(_status("printing", "ready", []))
    assert lines[1] == "printer   Primacy S1: printing a card"
    lines = format_status(_status("blocked", "fault", ["cover_open"]))
    assert lines[1] == "printer   Primacy S1: needs attention, cover open"
    assert lines[0] == "state     not printing" and lines[2] == "queued    2 jobs; taking jobs: yes"


def test_status_shows_the_jobs_held_and_says_when_the_rest_wait_at_the_broker():
    answer = _status("printing", "ready", [])
    assert not any(line.startswith("held") for line in format_status(answer))  # an old agent
    answer["telemetry"].update(held_jobs=12, max_held_jobs=50)
    assert format_status(answer)[3] == "held      12 of at most 50 jobs, with their images"
    answer["telemetry"].update(held_jobs=50)
    assert format_status(answer)[3] == ("held      50 of at most 50 jobs, with their images; "
                                        "the rest wait at the broker")
    assert not any(line.startswith("waiting") for line in format_status(answer))  # not counted
    answer["telemetry"].update(waiting_jobs=450)
    assert format_status(answer)[4] == "waiting   450 jobs at the broker, for this station"


def test_a_check_is_shown_once_within_80_columns():
    lines = format_status(_status("ready", "ready", []))
    text = "\n".join(lines)
    assert "ALERT warning: Cleaning due" in text and "ALERT warning: long" not in text
    block = text[text.index("NEEDS A CHECK"):]
    assert block.startswith("NEEDS A CHECK: job J-1\n    reference PERMOHONAN-1; unsure since")
    assert "printer's card counter: 41 when its blank was drawn, 42 now" in block
    assert "decide: printstation resolve J-1 --printed (or --not-printed)" in block
    assert max(len(line) for line in block.splitlines()) <= 80


def test_actions_answer_in_a_sentence():
    assert answer_words("resolve", {"job_id": "J-1"}, {"result": "failed"}) == (
        "job J-1: recorded as not printed, its blank counted as spoiled; the central system "
        "is told it failed and may send it again")
    assert answer_words("test-print", {}, {"queued": True}).startswith("a test card will print")
    assert answer_words("hand-back", {"job_id": "all"}, {"handed_back": ["P-1", "P-2"]}) == \
        "handed back to the pool: P-1, P-2"
