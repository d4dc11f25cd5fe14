"""Fixtures shared by the unit tests that read settings."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PRINTSTATION_ variable or systemd credentials folder of the shell running the
    tests leaks into the settings a test reads."""
    for key in list(os.environ):
        if key.startswith("PRINTSTATION_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
