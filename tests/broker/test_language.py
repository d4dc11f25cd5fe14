"""A station's language end to end: `printstation run` and the operator's commands as
processes, reading one configuration, on the simulated printer. With `language = "id"` the
agent's own messages (an alert's advice, why it is blocked, a refused load, the ledger's
check) and the commands' text are in Bahasa Indonesia; with `language = "en"` in English,
whatever the locale says."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import CLI, wait_for

ME = pwd.getpwuid(os.getuid()).pw_name

#: What each language says at each step (the same step, the same figures).
SAYS = {
    "id": {
        "locale": "en_US.UTF-8",  # the setting wins over the locale
        "blocked": "tidak dapat mencetak (Pita habis: pasang pita YMCKO baru; pencetakan "
                   "berlanjut dengan sendirinya)",
        "advice": "Pita habis (sisa 0 cetakan, cukup untuk sekitar 0 kartu): pasang pita "
                  "baru, lalu catat dengan `printstation load ribbon`",
        "out_first": "dapat mencetak 0 kartu lagi; pita habis lebih dulu",
        "refused": "printstation: printer ini tidak dapat memakai pita XYZ; printer ini "
                   "memakai YMCKO, YMCKK, YMCKOK, KO, K\n",
        "loaded": "pita YMCKO dicatat: sekarang terhitung 200 cetakan\n",
        "ribbon_line": "pita    YMCKO      200/200 cetakan (printer) ~100 kartu",
        "no_pace": "dapat mencetak 40 kartu lagi; blangko habis lebih dulu; belum cukup "
                   "banyak kartu dicetak untuk memperkirakan kapan",
        "blanks_line": "blangko diisi 40, dicetak 0, rusak 0, uji cetak 0, dikeluarkan 0, di "
                       "tempat blangko 40",
        "unloaded": "tercatat 2 blangko dikeluarkan tanpa dicetak (kartu no. 1-2); sekarang "
                    "terhitung 38 di tempat blangko\n",
        "balanced": "seimbang: diisi 40 = dicetak 0 + rusak 0 + uji cetak 0 + dikeluarkan 2 + "
                    "di tempat blangko 38 (hitungan printer)\n",
        "headings": ["tanggal", "jenis", "diisi", "dicetak", "rusak", "uji", "dikeluarkan",
                     "pita", "film"],
        "roll": f"pita YMCKO, serial R-1, lot L-1: dipasang <at> oleh {ME}, masih di printer",
        "roll_summary": "    kapasitas 200, 0 terpakai sejauh ini, sisa 200 (masih di printer)",
        "roll_use": "    0 cetakan untuk 0 kartu baik; 0 untuk 0 kartu rusak",
        "not_running": "printstation: agen tidak berjalan (tidak ada soket kontrol di {path})\n",
        "resolve_unknown": "printstation: pekerjaan cetak J-NONE tidak dikenal di stasiun ini\n",
        "cancel_unknown": "printstation: pekerjaan cetak J-NONE tidak ada di stasiun ini; hanya "
                          "pekerjaan cetak yang belum dicetak yang dapat dibatalkan\n",
    },
    "en": {
        "locale": "id_ID.UTF-8",
        "blocked": "not printing (Ribbon out: load a new YMCKO ribbon; printing goes on by "
                   "itself)",
        "advice": "Ribbon out (0 prints left, about 0 cards): load a new ribbon, then record "
                  "it with `printstation load ribbon`",
        "out_first": "can print 0 more cards; the ribbon runs out first",
        "refused": "printstation: this printer cannot use a XYZ ribbon; it takes YMCKO, YMCKK, "
                   "YMCKOK, KO, K\n",
        "loaded": "loaded ribbon YMCKO: 200 prints now counted\n",
        "ribbon_line": "ribbon  YMCKO      200/200 prints (printer) ~100 cards",
        "no_pace": "can print 40 more cards; the blanks run out first; not enough printing "
                   "yet to forecast when",
        "blanks_line": "blanks  loaded 40, issued 0, spoiled 0, test 0, removed 0, in the "
                       "feeder 40",
        "unloaded": "recorded 2 blanks taken out unprinted (card no. 1-2); 38 now counted in "
                    "the feeder\n",
        "balanced": "balanced: loaded 40 = issued 0 + spoiled 0 + test 0 + removed 2 + in the "
                    "feeder 38 (printer count)\n",
        "headings": ["day", "stock", "loaded", "issued", "spoiled", "test", "removed",
                     "ribbon", "film"],
        "roll": f"ribbon YMCKO, serial R-1, lot L-1: loaded <at> by {ME}, in the printer",
        "roll_summary": "    rated 200, 0 used so far, 200 left (in the printer)",
        "roll_use": "    0 prints to 0 good cards; 0 to 0 spoiled",
        "not_running": "printstation: the agent is not running (no control socket at "
                       "{path})\n",
        "resolve_unknown": "printstation: job J-NONE is not known to this station\n",
        "cancel_unknown": "printstation: job J-NONE is not held by this station; only a job "
                          "not yet printing can be cancelled\n",
    },
}


class StationProcess:
    """`printstation run --config FILE` and the commands an operator types beside it, each
    with the locale `locale` and no PRINTSTATION_LANGUAGE (the file decides)."""

    def __init__(self, folder: Path, broker_url: str, station_id: str, language: str,
                 locale: str):
        self.folder = folder
        self.config = folder / "station.toml"
        self.state = folder / "state"
        self.config.write_text(
            f'station_id = "{station_id}"\nbroker_url = "{broker_url}"\n'
            f'printer_url = "sim://?print_time=0.05&render=0&ribbon=0&cards=40'
            f'&out={folder / "cards"}"\n'
            f'state_dir = "{self.state}"\nverify_signatures = false\n'
            f'web_listen = ""\nmetrics_listen = ""\nlanguage = "{language}"\n')
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PRINTSTATION_LANGUAGE", "LANGUAGE", "LC_ALL", "LC_MESSAGES")}
        self.env["LANG"] = locale
        self.log = (folder / "agent.log").open("w")
        self.agent = subprocess.Popen([*CLI, "run", "--config", str(self.config)],
                                      stdout=self.log, stderr=subprocess.STDOUT, env=self.env)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args, "--config", str(self.config)], capture_output=True,
                              text=True, timeout=60, env=self.env)

    def ok(self, *args: str) -> str:
        done = self.cli(*args)
        assert done.returncode == 0, f"printstation {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; the agent's exit code."""
        if self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
        try:
            return self.agent.wait(30)
        finally:
            self.log.close()


@pytest.fixture
def station_process(tmp_path, broker_url, station_id):
    made: list[StationProcess] = []

    def make(language: str) -> StationProcess:
        station = StationProcess(tmp_path, broker_url, station_id, language,
                                 SAYS[language]["locale"])
        made.append(station)
        return station

    yield make
    for station in made:
        try:
            station.stop()
        except subprocess.TimeoutExpired:
            station.agent.kill()
            station.agent.wait(10)


@pytest.mark.parametrize("language", ["id", "en"])
def test_the_operator_reads_the_stations_language(station_process, language):
    says = SAYS[language]
    station = station_process(language)

    # The printer has no ribbon: the alert's advice and why it is blocked, from the agent.
    def blocked_with_advice() -> str | None:
        done = station.cli("status")
        return done.stdout if done.returncode == 0 and says["advice"] in done.stdout else None

    status = wait_for(blocked_with_advice, 40, "status showing the ribbon_out alert")
    assert says["blocked"] in status, status
    assert says["out_first"] in station.ok("stock")

    # A ribbon this printer cannot use is refused by the agent, in one line.
    refused = station.cli("load", "ribbon", "--type", "XYZ", "--capacity", "100")
    assert (refused.returncode, refused.stdout, refused.stderr) == (2, "", says["refused"])
    assert station.ok("load", "ribbon", "--type", "YMCKO", "--capacity", "200", "--serial",
                      "R-1", "--lot", "L-1") == says["loaded"]

    # The new roll counted, and no pace yet: the forecast says so where a time would be.
    def stock_after_the_load() -> str | None:
        out = station.ok("stock")
        return out if says["ribbon_line"] in out else None

    stock = wait_for(stock_after_the_load, 20, "stock showing the new ribbon")
    assert says["no_pace"] in stock.splitlines(), stock
    assert says["blanks_line"] in stock.splitlines(), stock

    # Two blanks taken out unprinted; the ledger balances and says so.
    assert station.ok("unload", "cards", "--count", "2", "--why", "training room") == \
        says["unloaded"]
    assert station.ok("ledger", "--check") == says["balanced"]
    table = station.ok("ledger").splitlines()
    assert table[0].split() == says["headings"], table
    assert table[1].split()[1:] == ["ektp", "40", "0", "0", "0", "2", "0", "0"], table
    assert table[-1] + "\n" == says["balanced"]

    # The roll's record, its summary written by the agent.
    rolls = station.ok("rolls").splitlines()
    first = next(i for i, line in enumerate(rolls) if "R-1" in line)
    line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "<at>", rolls[first])
    assert re.sub(r"^#\d+ ", "", line) == says["roll"], rolls
    assert rolls[first + 1:first + 3] == [says["roll_summary"], says["roll_use"]], rolls

    # A job this station does not hold: resolve and cancel refuse it in its language.
    for command, said in ((("resolve", "J-NONE", "--printed"), says["resolve_unknown"]),
                          (("cancel", "J-NONE"), says["cancel_unknown"])):
        refused = station.cli(*command, "--why", "typo")
        assert (refused.returncode, refused.stdout, refused.stderr) == (2, "", said)

    # Without the agent the command says so itself, in the configuration's language.
    assert station.stop() == 0
    gone = station.cli("stock")
    assert (gone.returncode, gone.stderr) == (
        2, says["not_running"].format(path=station.state / "control.sock"))
