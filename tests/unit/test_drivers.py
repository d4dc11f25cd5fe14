"""Drivers are found by URL scheme; the simulator behaves like a retransfer card printer."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from printstation.agent.central.samples import sample_job
from printstation.agent.station.printing import build_card
from printstation.drivers.base import CardJob, FaultCode, PrinterError
from printstation.drivers.panels import prepare_side
from printstation.drivers.registry import DriverNotFound, available, open_driver
from printstation.simulator.driver import SimDriver


def test_sim_is_registered_and_chosen_by_scheme(tmp_path):
    assert "sim" in available()
    driver = open_driver("sim://?cards=7&stock=kia", state_dir=tmp_path)
    assert isinstance(driver, SimDriver)
    status = driver.status()
    assert status.card_stock == "kia" and status.state == "ready"
    assert {c.kind: c.remaining for c in status.consumables}["cards"] == 7


def test_unknown_scheme_names_what_is_installed(tmp_path):
    with pytest.raises(DriverNotFound, match=r"no printer driver for scheme 'nope'.*sim"):
        open_driver("nope://x", state_dir=tmp_path)


@pytest.mark.parametrize(("url", "needle"), [
    ("sim://?speed=3", "parameter 'speed' is unknown"),
    ("sim://?cards=-1", "cards='-1': must not be negative"),
    ("sim://?faults=smoke", "faults='smoke': unknown fault 'smoke'; faults: jam, "),
])
def test_bad_sim_parameters_are_named(tmp_path, url, needle):
    with pytest.raises(ValueError, match=needle):
        open_driver(url, state_dir=tmp_path)


def _card(job_id: str, two_sided: bool = True) -> CardJob:
    from printstation.agent.station.journal import JobRow

    body = json.dumps(sample_job(job_id, two_sided=two_sided,
                                 destination="station.test").body).encode()
    row = JobRow(job_id, None, "ektp", "station", "queued", 0, 2, None, body, None, None, None)
    return build_card(row, (1016, 648))


def test_a_card_is_printed_drawn_counted_and_written(tmp_path):
    driver = open_driver(f"sim://?print_time=0&cards=3&out={tmp_path}", state_dir=tmp_path)
    result = driver.print_card(_card("D-1"))
    assert result.counter == 1
    status = driver.status()
    levels = {c.kind: c.remaining for c in status.consumables}
    assert levels == {"cards": 2, "ribbon": 998, "film": 998}
    ledger = [json.loads(x) for x in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert ledger[0]["job_id"] == "D-1" and ledger[0]["outcome"] == "issued"
    png = Image.open(tmp_path / ledger[0]["png"])
    assert png.size == (1016 * 2 + 16, 648)


def test_printed_card_matches_the_job_image(tmp_path):
    job = sample_job("D-2", two_sided=False)
    driver = open_driver(f"sim://?print_time=0&out={tmp_path}", state_dir=tmp_path)
    driver.print_card(_card("D-2", two_sided=False))
    printed = np.asarray(Image.open(tmp_path / "card-000001.png").convert("RGB"), dtype=float)
    import base64

    src = Image.open(io.BytesIO(base64.b64decode(job.body["sides"]["front"]["image"])))
    expected = np.asarray(src.convert("RGB").resize((1016, 648)), dtype=float)
    assert np.abs(printed - expected).mean() < 6.0  # mean error, 0-255 scale


def test_jam_spoils_the_blank_and_holds_until_cleared(tmp_path):
    driver = open_driver(f"sim://?print_time=0&jam_at=1&render=0&out={tmp_path}",
                         state_dir=tmp_path)
    with pytest.raises(PrinterError) as info:
        driver.print_card(_card("D-3"))
    assert info.value.fault is FaultCode.JAM and info.value.card_drawn
    assert driver.status().faults == (FaultCode.JAM,)
    with pytest.raises(PrinterError) as again:
        driver.print_card(_card("D-3"))
    assert not again.value.card_drawn
    driver.printer.clear()
    assert driver.print_card(_card("D-3")).counter == 2


def test_ribbon_out_is_a_fault_and_load_clears_it(tmp_path):
    driver = open_driver(f"sim://?print_time=0&ribbon=1&render=0&out={tmp_path}",
                         state_dir=tmp_path)
    with pytest.raises(PrinterError) as info:
        driver.print_card(_card("D-4", two_sided=True))
    assert info.value.fault is FaultCode.RIBBON_OUT and info.value.card_drawn
    driver.printer.load(ribbon=100)
    assert driver.status().faults == ()


def test_black_panel_comes_from_the_mask_or_near_black_pixels():
    img = Image.new("RGB", (1012, 638), (200, 200, 200))
    img.paste((10, 10, 10), (0, 0, 100, 100))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    side = prepare_side(buf.getvalue(), None, True, (1016, 648))
    k = ~np.asarray(side.black, dtype=bool)
    assert k[:90, :90].all() and not k[200:, 200:].any()
    mask = Image.new("1", (1012, 638), 1)
    mask.paste(0, (500, 300, 600, 400))
    mbuf = io.BytesIO()
    mask.save(mbuf, "PNG")
    side = prepare_side(buf.getvalue(), mbuf.getvalue(), True, (1016, 648))
    k = ~np.asarray(side.black, dtype=bool)
    assert k[310:390, 510:590].all() and not k[:90, :90].any()


def _literal_blocks(doc: str) -> list[str]:
    """The indented blocks that follow a line ending in '::' (reST literal blocks)."""
    import textwrap

    blocks, lines = [], doc.splitlines()
    for i, line in enumerate(lines):
        if line.endswith("::"):
            body = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and not nxt.startswith("    "):
                    break
                body.append(nxt)
            blocks.append(textwrap.dedent("\n".join(body)).strip() + "\n")
    return blocks


def test_the_driver_in_the_interface_docstring_works_as_written(tmp_path):
    import tomllib

    from printstation.drivers import base

    code, entry_point = _literal_blocks(base.__doc__ or "")
    namespace: dict = {}
    exec(compile(code, "drivers/base.py docstring", "exec"), namespace)
    driver_cls = namespace["ListPrinter"]
    assert issubclass(driver_cls, base.PrinterDriver)
    registered = tomllib.loads(entry_point)["project"]["entry-points"]["printstation.drivers"]
    assert registered == {"list": "listprinter:ListPrinter"}

    driver = driver_cls.from_url("list://desk-1?cards=1", state_dir=tmp_path)
    assert driver.identity().serial == "desk-1" and driver.status().state == "ready"
    assert driver.print_card(_card("DOC-1", two_sided=False)).counter == 1
    with pytest.raises(PrinterError) as info:
        driver.print_card(_card("DOC-2", two_sided=False))
    assert info.value.fault is FaultCode.FEEDER_EMPTY and info.value.card_drawn is False
    assert driver.status().faults == (FaultCode.FEEDER_EMPTY,)
    with pytest.raises(ValueError, match="cards"):
        driver_cls.from_url("list://desk-1?cards=many", state_dir=tmp_path)
