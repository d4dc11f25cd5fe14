"""The IPP driver's reading of what CUPS says (`drivers/ipp/attributes.py`) and its URL.

Every mapping is also run against the real CUPS and ippeveprinter in tests/ipp/; here each
rule is stated with the RFC's own values.
"""

from __future__ import annotations

import pytest

from printstation.drivers.base import FaultCode
from printstation.drivers.ipp import attributes as ipp
from printstation.drivers.ipp.driver import IppDriver, parse_url
from printstation.drivers.registry import driver_class


@pytest.mark.parametrize(("reasons", "expected"), [
    (["none"], ()),
    (["media-jam-error"], (FaultCode.JAM,)),
    (["media-jam"], (FaultCode.JAM,)),
    (["media-jam-warning"], (FaultCode.JAM,)),  # ippeveprinter's while it prints
    (["media-empty-warning", "media-needed-warning"], (FaultCode.FEEDER_EMPTY,)),
    (["cover-open-report"], (FaultCode.COVER_OPEN,)),
    (["marker-supply-low-warning", "cups-waiting-for-job-completed"], ()),
    (["marker-supply-empty-error"], (FaultCode.RIBBON_OUT,)),
    (["door-open"], (FaultCode.COVER_OPEN,)),
    (["offline-report"], (FaultCode.OFFLINE,)),
    (["paused"], (FaultCode.OFFLINE,)),
    (["fuser-over-temp-error"], (FaultCode.OTHER,)),
    (["fuser-over-temp-warning"], ()),
    (["output-area-full-error", "media-jam-error"], (FaultCode.JAM, FaultCode.HOPPER_FULL)),
])
def test_state_reasons_of_a_working_printer_are_the_agents_faults(reasons, expected):
    assert ipp.faults(ipp.PrinterState.PROCESSING, reasons) == tuple(sorted(expected))


def test_an_idle_queues_reasons_are_stale_and_no_faults():
    """CUPS keeps the last reasons a job saw after it ends: only a running or stopped
    printer's reasons count."""
    assert ipp.faults(ipp.PrinterState.IDLE, ["media-jam-report"]) == ()
    assert ipp.faults(ipp.PrinterState.STOPPED, ["media-jam-report"]) == (FaultCode.JAM,)


def test_marker_levels_become_prints_with_a_rated_yield_and_unknown_without():
    attrs = {"marker-names": ["YMCKO Ribbon", "Retransfer Film", "Cleaning"],
             "marker-types": ["ink-ribbon", "transfer-unit", "other"],
             "marker-levels": [40, -3, 90]}
    found = ipp.markers(attrs)
    assert [(m.kind, m.level) for m in found] == [("ribbon", 40), ("film", None), (None, 90)]
    ribbon, film = ipp.levels(found, {"ribbon": 250, "film": 500})
    assert (ribbon.kind, ribbon.remaining, ribbon.capacity, ribbon.unit, ribbon.source) == \
        ("ribbon", 100, 250, "prints", "printer")
    assert (film.kind, film.remaining, film.capacity, film.unit) == ("film", None, 500, "panels")
    [bare] = ipp.levels(found[:1], {})
    assert (bare.remaining, bare.capacity) == (None, None)  # a percentage is not a count


def test_an_ipp_everywhere_printers_supplies_are_read_where_there_are_no_markers():
    attrs = {"printer-supply": [b"index=1;type=inkRibbon;unit=percent;maxcapacity=100;level=30;",
                                "index=2;type=transferUnit;unit=sheets;maxcapacity=500;level=250;",
                                "index=3;type=ribbonWax;unit=percent;level=-3;"],
             "printer-supply-description": ["YMCKO", "Film", "Overlay roll"]}
    found = ipp.markers(attrs)
    assert [(m.name, m.kind, m.level) for m in found] == [
        ("YMCKO", "ribbon", 30), ("Film", "film", 50), ("Overlay roll", None, None)]


def test_a_single_marker_comes_as_a_value_not_a_list():
    assert [m.kind for m in ipp.markers({"marker-names": "Ribbon", "marker-levels": 5})] == \
        ["ribbon"]


def test_the_url_names_a_queue_and_its_options():
    o = parse_url("ipp://localhost:8631/printers/fargo-1?print_timeout=60&ribbon_prints=250")
    assert (o.host, o.port, o.queue, o.encrypted, o.print_timeout, dict(o.rated)) == \
        ("localhost", 8631, "fargo-1", False, 60.0, {"ribbon": 250})
    assert parse_url("ipps://cups.local/printers/q").encrypted is True
    assert driver_class("ipp://h/printers/q") is driver_class("ipps://h/printers/q") is IppDriver


@pytest.mark.parametrize(("url", "says"), [
    ("ipp://localhost:631/ipp/print", "name a CUPS queue"),
    ("ipp://localhost/printers/", "name a CUPS queue"),
    ("ipp://localhost/printers/q?colour=1", "unknown parameter 'colour'"),
    ("ipp://localhost/printers/q?ribbon_prints=lots", "invalid literal"),
    ("ipp://localhost:xx/printers/q", "port"),
])
def test_a_bad_url_is_one_line_naming_the_problem(url, says):
    with pytest.raises(ValueError, match=says):
        parse_url(url)
