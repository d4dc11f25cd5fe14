"""Card submission through IPP per card: the agent's `ipp://` driver against CUPS's own
`ipptool` sending the same two-page document to the same queue, in one run.

Both do what submitting a card is: Create-Job, then Send-Document with the PDF, on one
connection; neither waits for the card to come out (CUPS's IPP backend polls the printer
about once a second, the same for both, so it would hide the difference). The agent also
asks for the job's uuid and journals nothing here (the driver's `note_submitted` is not
set). The PDF is made once ahead, as the agent makes it on its card-preparation thread
while another card prints; that time is printed apart. Each side submits its cards back to
back to an idle queue and the figure is the mean per card: `ipptool` runs them in one
process from one test file (its start-up paid once), the driver in one loop. Needs root,
cups, cups-ipp-utils, dbus and pycups (`make system-deps ipp`):

    .venv/bin/python bench/ipp_submit.py --cards 20
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from printstation.agent.central.samples import sample_job
from printstation.agent.station.journal import JobRow
from printstation.agent.station.printing.cards import build_card
from printstation.drivers.base import CardJob, CardResult
from printstation.drivers.ipp.driver import IppDriver, parse_url
from tests.support.cups import CardPrinter, Cupsd, folder, missing

TEST_PAIR = """{{
  NAME "Create-Job {n}"
  OPERATION Create-Job
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR naturalLanguage attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR name requesting-user-name root
  ATTR name job-name BENCH-IPPTOOL-{n}
  GROUP job-attributes-tag
  ATTR keyword media om_card_54x86mm
  STATUS successful-ok
}}
{{
  NAME "Send-Document {n}"
  OPERATION Send-Document
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR naturalLanguage attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR integer job-id $job-id
  ATTR name requesting-user-name root
  ATTR mimeMediaType document-format application/pdf
  ATTR boolean last-document true
  FILE $filename
  STATUS successful-ok
}}
"""


class SubmitOnly(IppDriver):
    """The driver's own submission, without waiting for the card to come out."""

    def _finished(self, job_id: int, uuid: str, card: CardJob) -> CardResult:
        return CardResult(counter=None)


def the_card() -> CardJob:
    body = sample_job("BENCH-IPP", two_sided=True, destination="station.bench").body
    row = JobRow("BENCH-IPP", None, "ektp", "station", "queued", 0, 2, None,
                 json.dumps(body).encode(), None, None, None)
    return build_card(row, IppDriver.native_size)


def drained(cupsd: Cupsd, queue: str, timeout: float = 120) -> None:
    """Wait until the queue has no job left (each card printed), so every submission meets
    an idle queue."""
    conn = cupsd.connection()
    deadline = time.monotonic() + timeout
    while conn.getJobs(which_jobs="not-completed"):
        if time.monotonic() > deadline:
            raise SystemExit("bench/ipp_submit.py: the queue did not drain")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=20)
    args = parser.parse_args()
    lack = missing()
    if lack:
        print(f"bench/ipp_submit.py: {lack}", file=sys.stderr)
        return 2
    root = folder("printstation-bench-cupsd-")
    work = Path(tempfile.mkdtemp(prefix="printstation-bench-ipp-"))
    cupsd = Cupsd(root)
    printer = CardPrinter(work / "printer")
    try:
        url = cupsd.add_queue("bench", printer)
        driver = SubmitOnly(parse_url(url))
        driver.open()
        card = the_card()
        start = time.perf_counter()
        driver.prepare(card)
        made = time.perf_counter() - start
        pdf = work / "card.pdf"
        pdf.write_bytes(card.encoded)  # type: ignore[arg-type]
        tests = work / "cards.test"
        tests.write_text("".join(TEST_PAIR.format(n=n) for n in range(args.cards)))
        drained(cupsd, "bench")
        start = time.perf_counter()
        for _ in range(args.cards):
            driver.print_card(card)
        agent = (time.perf_counter() - start) / args.cards
        drained(cupsd, "bench")
        start = time.perf_counter()
        ran = subprocess.run(["ipptool", "-q", "-f", str(pdf), cupsd.queue_uri("bench"),
                              str(tests)], capture_output=True, text=True, timeout=600)
        tool_total = time.perf_counter() - start
        if ran.returncode != 0:
            print(f"bench/ipp_submit.py: ipptool failed: {ran.stdout[-400:]}{ran.stderr[-400:]}",
                  file=sys.stderr)
            return 1
        tool = tool_total / args.cards
        drained(cupsd, "bench")
    finally:
        printer.stop()
        cupsd.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    a, t = agent, tool
    size = len(card.encoded) // 1024  # type: ignore[arg-type]
    print(f"IPP submission per card (Create-Job + Send-Document of a {size} KB two-page PDF), "
          f"{args.cards} cards back to back: agent {a * 1000:.1f} ms, ipptool "
          f"{t * 1000:.1f} ms (one process, baseline, same run): overhead "
          f"{100 * (a - t) / t:+.1f}%; the PDF made ahead, on the card-preparation thread: "
          f"{made * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
