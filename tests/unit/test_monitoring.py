"""The example alert rules, checked and unit-tested by Prometheus's own promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

MONITORING = REPO / "monitoring"
RULES = MONITORING / "prometheus-alerts.yml"
RULE_TESTS = MONITORING / "prometheus-alerts.test.yml"
INSTALL = ("this test needs promtool: apt-get install -y --no-install-recommends prometheus "
           "(make system-deps does it)")


def promtool(*args: str | Path) -> subprocess.CompletedProcess:
    if not shutil.which("promtool"):
        pytest.fail(INSTALL, pytrace=False)
    return subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def test_the_rules_are_valid():
    out = promtool("check", "rules", RULES)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_the_rules_pass_their_unit_tests():
    """A printer fault held 5 minutes and an agent that cannot be scraped alert; a fault
    cleared in time, another scrape job's target and an agent back up do not."""
    out = promtool("test", "rules", RULE_TESTS)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(("alert", "old", "new"), [
    ("PrintstationPrinterFault", "expr: printstation_printer_fault == 1",
     "expr: printstation_printer_fault == 2"),
    ("PrintstationAgentDown", 'expr: up{job="printstation"} == 0', 'expr: up == 0'),
])
def test_the_unit_tests_catch_a_wrong_rule(tmp_path, alert, old, new):
    rules = RULES.read_text()
    assert old in rules
    (tmp_path / RULES.name).write_text(rules.replace(old, new))
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    out = promtool("test", "rules", Path(tmp_path / RULE_TESTS.name))
    assert out.returncode != 0 and alert in out.stdout + out.stderr
