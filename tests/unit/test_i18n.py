"""Bahasa Indonesia: every marked message has its translation (and the check can fail), the
language follows the `language` setting or else the locale, the page's JSON catalogue, the
words for codes, and the demo in both languages as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
import typing
from fnmatch import fnmatch
from pathlib import Path

import pytest

from printstation.agent import i18n
from printstation.agent.config import ConfigError, load_settings
from printstation.agent.i18n import labels, maintain
from tests.support import REPO, run

LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG", "PRINTSTATION_LANGUAGE")


@pytest.fixture(scope="module")
def template():
    """The messages marked in agent/, extracted as `make messages` does."""
    return maintain.extract()


@pytest.fixture
def process_language():
    """Put the process's language back as it was after a test that changes it."""
    saved = i18n._active, i18n._language
    yield
    i18n._active, i18n._language = saved


# ------------------------------------------------------------------ every message has both

def test_every_marked_message_has_its_indonesian_translation(template):
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    assert {"all cards printed", "needs check", "Summary after {seconds} s"} <= ids
    assert maintain.problems(template, "id") == []


@pytest.fixture
def catalogue_copy(tmp_path: Path) -> Path:
    """A copy of the real catalogues to spoil."""
    locale = tmp_path / "locale"
    shutil.copytree(i18n.LOCALE_DIR, locale)
    assert maintain.problems(maintain.extract(), "id", locale) == []
    return locale


def test_the_check_fails_on_a_marked_message_nobody_translated(tmp_path, catalogue_copy):
    """A developer marks a new message and runs `make messages` without translating it."""
    source = tmp_path / "src" / "agent" / "surfaces"
    source.mkdir(parents=True)
    (source / "new.py").write_text('from printstation.agent.i18n import _\n\n'
                                   'print(_("a new message for {who}"))\n')
    template = maintain.extract(tmp_path / "src")
    before = maintain.problems(template, "id", catalogue_copy)
    assert "id: 'a new message for {who}': not in the catalogue (run make messages)" in before
    maintain.update(template, "id", catalogue_copy)
    po = maintain.po_path("id", catalogue_copy).read_text()
    assert 'msgid "a new message for {who}"\nmsgstr ""' in po
    assert "all cards printed" not in po  # no longer in this source: dropped by the merge
    assert maintain.problems(template, "id", catalogue_copy) == [
        "id: 'a new message for {who}': not translated"]


def _spoil(locale: Path, old: str, new: str) -> None:
    po = maintain.po_path("id", locale)
    text = po.read_text()
    assert old in text
    po.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("old", "new", "problem"), [
    ('msgstr "semua kartu berhasil dicetak"', 'msgstr ""',
     "id: 'all cards printed': not translated"),
    ('msgstr "agen tidak dapat terhubung ke broker di {url}"',
     'msgstr "agen tidak dapat terhubung ke broker"',
     "id: 'the agent could not reach the broker at {url}': placeholders differ: English has "
     "{url}, the translation none"),
    ('msgstr "jurnal agen: {path}"', 'msgstr "jurnal agen: {jalur}"',
     "id: 'agent journal: {path}': placeholders differ: English has {path}, the translation "
     "{jalur}"),
    ('#, python-brace-format\nmsgid "agent journal: {path}"',
     '#, fuzzy, python-brace-format\nmsgid "agent journal: {path}"',
     "id: 'agent journal: {path}': fuzzy: check the translation and remove the fuzzy flag"),
    ('msgid "all cards printed"', 'msgid "every card printed"',
     "id: 'every card printed': obsolete, the source no longer has it"),
    ('msgid "all cards printed"\nmsgstr "semua kartu berhasil dicetak"\n',
     'msgid "all cards printed"\nmsgstr "semua kartu berhasil dicetak"\n\n'
     '#~ msgid "an old message"\n#~ msgstr "pesan lama"\n',
     "id: 'an old message': obsolete entry (#~) left in the catalogue"),
    ('msgstr "semua kartu berhasil dicetak"', 'msgstr "semua kartu sudah dicetak"',
     "printstation.mo does not match its .po: run make messages"),
])
def test_the_check_fails_on_a_spoiled_catalogue(template, catalogue_copy, old, new, problem):
    _spoil(catalogue_copy, old, new)
    found = maintain.problems(template, "id", catalogue_copy)
    assert any(problem in line for line in found), found


def test_make_messages_leaves_a_complete_catalogue_unchanged(template, catalogue_copy):
    po, mo = maintain.po_path("id", catalogue_copy), maintain.mo_path("id", catalogue_copy)
    before = po.read_bytes(), mo.read_bytes()
    maintain.update(template, "id", catalogue_copy)
    assert (po.read_bytes(), mo.read_bytes()) == before


@pytest.mark.parametrize(("text", "expected"), [
    ("{a} and {b:.1f}, {{literal}}", ({"{a}": 1, "{b:.1f}": 1}, [], {})),
    ("%s of %d, %(name)s, 100%%", ({"%(name)s": 1}, ["%s", "%d"], {})),
    ("[bold]Summary[/] and [red]x[/red]", ({}, [], {"[bold]": 1, "[/]": 1, "[red]": 1,
                                                    "[/red]": 1})),
    ("[thresholds.ribbon] is a table", ({}, [], {})),
])
def test_placeholders_a_translation_must_keep(text, expected):
    assert tuple(dict(x) if not isinstance(x, list) else x
                 for x in maintain.placeholders(text)) == expected


def test_messages_in_the_pages_inline_script_are_extracted(tmp_path):
    static = tmp_path / "agent" / "surfaces" / "static"
    static.mkdir(parents=True)
    (static / "page.html").write_text(
        "<!doctype html>\n<p>Don't stop: it's HTML</p>\n<script>\n"
        "const a = 1;\n// TRANSLATORS: the banner\nsay(_(\"Ready to print\"));\n"
        "say(ngettext(\"{n} card waiting\", \"{n} cards waiting\", n));\n</script>\n")
    (static / "page.js").write_text('const b = _("from a script file");\n')
    template = maintain.extract(tmp_path)
    found = {m.id: m for m in template if m.id}
    assert found["Ready to print"].locations == [("agent/surfaces/static/page.html", 6)]
    assert found["Ready to print"].auto_comments == ["the banner"]
    assert ("{n} card waiting", "{n} cards waiting") in found
    assert "from a script file" in found


# ------------------------------------------------------------------------ which language

@pytest.mark.parametrize(("environ", "language"), [
    ({}, "en"),
    ({"LANG": "id_ID.UTF-8"}, "id"),
    ({"LANG": "id_ID"}, "id"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "fr_FR.UTF-8"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LC_MESSAGES": "id_ID.UTF-8", "LANG": "en_US.UTF-8"}, "id"),
    ({"LC_ALL": "en_US.UTF-8", "LC_MESSAGES": "id_ID.UTF-8"}, "en"),
    ({"LANGUAGE": "fr:id", "LC_ALL": "en_US.UTF-8"}, "id"),
    ({"LANGUAGE": "", "LANG": "id_ID.UTF-8"}, "id"),
    ({"LANG": "in_ID"}, "id"),
])
def test_the_locale_decides_in_gettexts_order(environ, language):
    assert i18n.locale_language(environ) == language


def test_the_setting_wins_over_the_locale():
    assert i18n.resolve("en", {"LANG": "id_ID.UTF-8"}) == "en"
    assert i18n.resolve("id", {"LANG": "en_US.UTF-8"}) == "id"
    assert i18n.resolve(None, {"LANG": "id_ID.UTF-8"}) == "id"
    with pytest.raises(ValueError, match="language 'fr' is not one of en, id"):
        i18n.resolve("fr")


def test_the_language_setting_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PRINTSTATION_LANGUAGE", raising=False)
    assert load_settings().language is None
    config = tmp_path / "printstation.toml"
    config.write_text('language = "id"\n')
    assert load_settings(config).language == "id"
    monkeypatch.setenv("PRINTSTATION_LANGUAGE", "en")
    assert load_settings(config).language == "en"
    config.write_text('language = "indonesian"\n')
    monkeypatch.delenv("PRINTSTATION_LANGUAGE")
    with pytest.raises(ConfigError, match=r"^config key language: Input should be 'id' or 'en'$"):
        load_settings(config)


def test_use_switches_the_process_language(process_language):
    assert i18n.use("id") == "id" and i18n.language() == "id"
    assert i18n._("all cards printed") == "semua kartu berhasil dicetak"
    assert i18n.ngettext("{count} sample card, station {station}, printer {printer}, {source}",
                         "{count} sample cards, station {station}, printer {printer}, {source}",
                         1).startswith("{count} kartu contoh")
    assert labels.status("needs_check") == "perlu diperiksa"
    assert labels.fault("cover_open") == "penutup terbuka"
    assert i18n._("a message the catalogue lacks") == "a message the catalogue lacks"
    i18n.use("en")
    assert i18n._("all cards printed") == "all cards printed"
    assert labels.status("needs_check") == "needs check"
    assert labels.status("needs_check", "id") == "perlu diperiksa"  # per request (web page)
    assert labels.status("no_such_code") == "no_such_code"


# ----------------------------------------------------------------------- the web page's JSON

def test_the_pages_catalogue_is_json_with_singulars_and_plural_forms():
    indonesian = json.loads(json.dumps(i18n.catalogue("id")))
    assert indonesian["language"] == "id" and indonesian["nplurals"] == 1
    assert indonesian["messages"]["all cards printed"] == "semua kartu berhasil dicetak"
    assert indonesian["messages"]["needs check"] == "perlu diperiksa"
    assert indonesian["plurals"][
        "{count} sample card, station {station}, printer {printer}, {source}"] == [
        "{count} kartu contoh, stasiun {station}, printer {printer}, {source}"]
    assert "" not in indonesian["messages"]
    assert i18n.catalogue("en") == {"language": "en", "nplurals": 2, "messages": {},
                                    "plurals": {}}
    with pytest.raises(ValueError, match="language 'fr'"):
        i18n.catalogue("fr")


# --------------------------------------------------------------------------- words for codes

def test_every_code_has_a_word():
    from printstation.agent.contract import JOB_STATUS_NAMES
    from printstation.agent.contract.events import CardFields
    from printstation.agent.station.journal.jobstate import JobState
    from printstation.drivers.base import ConsumableLevel, FaultCode

    assert set(labels.STATUSES) == set(JobState) | JOB_STATUS_NAMES
    assert set(labels.OUTCOMES) == set(typing.get_args(
        CardFields.model_fields["outcome"].annotation))
    assert set(labels.FAULTS) == set(FaultCode)
    kinds = set(typing.get_args(typing.get_type_hints(ConsumableLevel)["kind"]))
    assert set(labels.CONSUMABLES) == kinds | {"cleaning"}


def test_the_compiled_catalogues_are_packaged():
    """A wheel or `pip install` ships every .mo: the package data names them."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "printstation.agent.i18n" in setuptools["packages"]
    globs = setuptools["package-data"]["printstation.agent.i18n"]
    compiled = [p.relative_to(i18n.LOCALE_DIR.parent).as_posix()
                for p in i18n.LOCALE_DIR.rglob("*.mo")]
    assert compiled == ["locale/id/LC_MESSAGES/printstation.mo"]
    assert all(any(fnmatch(path, glob) for glob in globs) for path in compiled)
    assert i18n.translations("id").gettext("needs check") == "perlu diperiksa"


# ---------------------------------------------------------------- the demo, as a user runs it

def _environ(**values: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in LOCALE_VARIABLES}
    return {**environ, **values}


def _demo(tmp_path: Path, *flags: str, **environ: str) -> str:
    out = run("demo", "--count", "3", "--jam-at", "2", "--print-time", "0.05",
              "--out", str(tmp_path / "out"), *flags, env=_environ(**environ))
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_the_demo_speaks_english_by_default(tmp_path):
    stdout = _demo(tmp_path, LANG="C.UTF-8")
    assert "printstation demo: 3 sample cards, station demo-" in stdout
    assert "  jobs: 3, ended: 3 (printed 3)" in stdout
    assert "  cards from the printer: 4 (printed 3, spoiled 1); printed twice: 0" in stdout
    assert stdout.rstrip().endswith("all cards printed")
    assert "kartu" not in stdout


def test_the_demo_speaks_indonesian_in_an_indonesian_locale(tmp_path):
    stdout = _demo(tmp_path, LANG="id_ID.UTF-8")
    assert "printstation demo: 3 kartu contoh, stasiun demo-" in stdout
    assert "Ringkasan setelah " in stdout
    assert "  pekerjaan cetak: 3, selesai: 3 (dicetak 3)" in stdout
    assert "  kartu keluar dari printer: 4 (dicetak 3, rusak 1); tercetak dua kali: 0" in stdout
    assert "  jurnal agen: " in stdout and "  gambar kartu dan catatan printer: " in stdout
    assert stdout.rstrip().endswith("semua kartu berhasil dicetak")


@pytest.mark.parametrize(("setting", "locale", "last_line"), [
    ("id", "en_US.UTF-8", "semua kartu berhasil dicetak"),
    ("en", "id_ID.UTF-8", "all cards printed"),
])
def test_the_demo_follows_the_language_setting_over_the_locale(tmp_path, setting, locale,
                                                                last_line):
    config = tmp_path / "printstation.toml"
    config.write_text(f'language = "{setting}"\n')
    stdout = _demo(tmp_path, "--config", str(config), LANG=locale)
    assert stdout.rstrip().endswith(last_line)


def test_the_demo_names_a_bad_language_in_one_line(tmp_path):
    out = run("demo", "--count", "1", env=_environ(PRINTSTATION_LANGUAGE="jawa"))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == ("printstation: config key language: Input should be 'id' or 'en'\n")
