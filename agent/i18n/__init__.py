"""What the operator reads, in Indonesian or English: the `language` setting, else the locale.

Operators at the offices read Indonesian first; technicians and the source are English. A
message is written in English in the source and marked, and its Indonesian is looked up in
a gettext catalogue (`locale/id/LC_MESSAGES/printstation.po`, compiled to `.mo`):

    from printstation.agent.i18n import _, ngettext

    print(_("all cards printed"))
    print(ngettext("{n} card", "{n} cards", n).format(n=n))

Rules for marked text (the catalogue check, `python -m printstation.agent.i18n.maintain
--check`, enforces the last two):

- mark the literal, never an f-string: `_("printer {url}").format(url=url)`; placeholders
  (`{name}`, `%s`) must be the same in both languages;
- keep markup and codes (rich's `[bold]`, a job id, a command name) out of the message where
  they can be, and give the translator context with a `# TRANSLATORS: ...` comment;
- a module that imports `_` must not also use `_` as a throwaway name (`for _ in ...`);
- a word chosen at import time (a table of labels) is marked with `N_()` and translated
  where it is shown: `_(LABELS[code])` (see `labels`).

The language is chosen once per process by `use(settings.language)`: `"id"` or `"en"` from
the configuration, or, when that is unset (None), from the locale as gettext reads it
(`LANGUAGE`, `LC_ALL`, `LC_MESSAGES`, `LANG`; `id_ID.UTF-8` is Indonesian), English
otherwise. Until `use` is called, the locale decides. A surface that answers in another
language per request (the web page) takes `translations(language)` instead, and the page
itself loads `catalogue(language)` as JSON.

Why the compiled `.mo` is committed beside its `.po` rather than built at install: a station
and `pip install -e .` then need nothing but the standard library's `gettext` (no Babel, no
build hook that an editable install would skip), and the catalogue check fails when the
`.mo` does not say what the `.po` says, so the two cannot drift. `make messages` (Babel)
extracts, merges, compiles and checks (`maintain`).
"""

from __future__ import annotations

import functools
import gettext
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

DOMAIN = "printstation"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
#: The languages the agent speaks; English is the source language and has no catalogue.
LANGUAGES: tuple[str, ...] = ("en", "id")
Language = Literal["en", "id"]
#: gettext's order: the first of these that is set decides (`LANGUAGE` may list several).
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
#: Locale language codes taken for each language ("in" is Indonesian's withdrawn ISO code).
_ALIASES = {"id": "id", "in": "id", "en": "en", "c": "en", "posix": "en"}

_active: gettext.NullTranslations | None = None
_language: str | None = None


def locale_language(environ: Mapping[str, str] | None = None) -> Language:
    """The language the locale asks for, read as gettext reads it; English when it asks for
    none that the agent speaks (`fr_FR` or an unset locale)."""
    env = os.environ if environ is None else environ
    for variable in LOCALE_VARIABLES:
        value = env.get(variable, "")
        if not value:
            continue
        for entry in value.split(":"):
            # id_ID.UTF-8@modifier -> id
            code = entry.split(".")[0].split("@")[0].split("_")[0].split("-")[0].lower()
            if code in _ALIASES:
                return _ALIASES[code]  # type: ignore[return-value]
        return "en"
    return "en"


def resolve(setting: str | None, environ: Mapping[str, str] | None = None) -> Language:
    """The configured language (`"id"`/`"en"`), or the locale's when it is unset."""
    if setting is not None:
        if setting not in LANGUAGES:
            raise ValueError(f"language {setting!r} is not one of {', '.join(LANGUAGES)}")
        return setting  # type: ignore[return-value]
    return locale_language(environ)


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of `language` (English: none, every message is its own translation).

    Thread-safe to share: a surface answering several languages at once (the web page) calls
    `translations(lang).gettext(...)` per request rather than `use`.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    if language == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])


def use(setting: str | None = None) -> Language:
    """Speak `setting`'s language (None: the locale's) in this process from now on; returns
    the language chosen. Call it once the configuration is loaded."""
    global _active, _language
    language = resolve(setting)
    _active, _language = translations(language), language
    return language


def language() -> Language:
    """The language this process speaks (the locale's until `use` is called)."""
    if _language is None:
        use(None)
    return _language  # type: ignore[return-value]


def _current() -> gettext.NullTranslations:
    if _active is None:
        use(None)
    return _active  # type: ignore[return-value]


def _(message: str) -> str:
    """`message` in the process's language."""
    return _current().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for `n`, in the process's language (Indonesian has one)."""
    return _current().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark `message` for the catalogue without translating it yet (tables built at import:
    translate where the word is shown, with `_(value)`)."""
    return message


def catalogue(language: str) -> dict[str, Any]:
    """The catalogue of `language` as JSON for the web page:

        {"language": "id", "nplurals": 1,
         "messages": {"all cards printed": "semua kartu berhasil dicetak", ...},
         "plurals": {"{n} card": ["{n} kartu"], ...}}   # keyed by the singular

    English has empty tables: the page shows each message as written. The page's lookup:

        const _ = (m) => cat.messages[m] || m;
        const ngettext = (s, p, n) => {
          const forms = cat.plurals[s];
          const i = cat.nplurals === 1 ? 0 : (n === 1 ? 0 : 1);
          return forms && forms[i] ? forms[i] : (n === 1 ? s : p);
        };
    """
    table = translations(language)
    messages: dict[str, str] = {}
    plurals: dict[str, list[str]] = {}
    nplurals = 2
    if isinstance(table, gettext.GNUTranslations):
        # The parsed .mo: {msgid: text, (singular, form): text, "": header}.
        raw: dict[Any, str] = table._catalog  # type: ignore[attr-defined]
        nplurals = _plural_count(raw.get("", ""))
        for key, text in raw.items():
            if key == "":
                continue
            if isinstance(key, tuple):  # (singular, form index); the plural id is not kept
                singular, index = key
                forms = plurals.setdefault(singular, [""] * nplurals)
                forms[index] = text
            else:
                messages[key] = text
    return {"language": language, "nplurals": nplurals, "messages": messages,
            "plurals": plurals}


def _plural_count(header: str) -> int:
    """nplurals from a catalogue header's `Plural-Forms` line (2 when it has none)."""
    for line in header.splitlines():
        if line.lower().startswith("plural-forms:"):
            for part in line.split(":", 1)[1].split(";"):
                name, _sep, value = part.strip().partition("=")
                if name.strip() == "nplurals":
                    return int(value)
    return 2
