"""Keeping the catalogues in step with the source: extract, merge, compile, check.

    make messages                                   # all four, then lists what is missing
    .venv/bin/python -m printstation.agent.i18n.maintain --check   # check only, writes nothing

Extraction reads every message marked in `agent/` (`_`, `ngettext`, `N_` in Python; `_` and
`ngettext` in the web page's JavaScript, inline in `static/*.html` or in `static/*.js`) with
Babel, the well-kept gettext toolkit; the merge keeps each translation, marks a changed
message `fuzzy` for review and drops messages no longer in the source; the compile writes
the `.mo` the agent reads at run time. Needs Babel (the `test` extra) and a source checkout:
a station runs only the compiled catalogue.

The check (`problems`) is what the test runs: every marked message has a translation in
every catalogue, not fuzzy and not empty, with the same placeholders (`{name}`, `%s`,
`%(name)s`) and rich markup tags as the English; no entry is left that the source no longer
has; the `.mo` says what the `.po` says.
"""

from __future__ import annotations

import argparse
import gettext
import io
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from printstation.agent.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

#: The source tree's root (a checkout; an installed package has no `.po` to maintain).
SOURCE_ROOT = Path(__file__).resolve().parents[2]
#: Where marked messages are looked for, under SOURCE_ROOT.
SOURCE_DIRS = ("agent",)
#: Languages with a catalogue (English is the source's own).
CATALOGUE_LANGUAGES = tuple(lang for lang in LANGUAGES if lang != "en")
#: A comment starting with this above a marked message reaches the translator.
COMMENT_TAGS = ("TRANSLATORS:",)
PO_WIDTH = 100


def po_path(language: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(language: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return po_path(language, locale_dir).with_suffix(".mo")


# ---------------------------------------------------------------------------- extraction

def extract_html(fileobj: Any, keywords: Any, comment_tags: Any,
                 options: dict[str, Any]) -> Iterator[tuple[int, str, Any, list[str]]]:
    """Babel extraction method for a page's inline `<script>` blocks: Babel's JavaScript
    extractor on each block (it cannot read the HTML around them), with the page's lines."""
    from babel.messages.extract import extract_javascript

    text = fileobj.read().decode(options.get("encoding", "utf-8"))
    for block in re.finditer(r"<script\b[^>]*>(.*?)</script>", text, re.S | re.I):
        offset = text.count("\n", 0, block.start(1))
        script = io.BytesIO(block.group(1).encode("utf-8"))
        for lineno, funcname, message, comments in extract_javascript(
                script, keywords, comment_tags, {**options, "encoding": "utf-8"}):
            yield lineno + offset, funcname, message, comments


METHOD_MAP: list[tuple[str, Any]] = [
    ("**.py", "python"),
    ("**/static/**.html", extract_html),
    ("**/static/**.js", "javascript"),
]


def extract(root: Path = SOURCE_ROOT, dirs: Iterable[str] = SOURCE_DIRS) -> Any:
    """The template: every message marked under `root/dirs`, with where it is used."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    template = Catalog(project="printstation", domain=DOMAIN, charset="utf-8",
                       fuzzy=False)
    for folder in dirs:
        for filename, lineno, message, comments, context in extract_from_dir(
                root / folder, METHOD_MAP, comment_tags=COMMENT_TAGS,
                strip_comment_tags=True):
            template.add(message, None, [(f"{folder}/{filename}", lineno)],
                         auto_comments=comments, context=context)
    return template


# ------------------------------------------------------------------ merge and compile

def read(path: Path, language: str) -> Any:
    from babel.messages.pofile import read_po

    with path.open("rb") as fh:
        return read_po(fh, locale=language, domain=DOMAIN)


def update(template: Any, language: str, locale_dir: Path = LOCALE_DIR) -> Path:
    """Merge `template` into the language's `.po` (made when missing), then compile its
    `.mo`. Translations are kept; a changed message comes back fuzzy with its old text."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    path = po_path(language, locale_dir)
    if path.exists():
        catalog = read(path, language)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(locale=language, domain=DOMAIN, project="printstation",
                          fuzzy=False, charset="utf-8")
    catalog.update(template, update_creation_date=False)
    buf = io.BytesIO()
    write_po(buf, catalog, width=PO_WIDTH, ignore_obsolete=True, include_previous=True,
             include_lineno=False)
    path.write_bytes(buf.getvalue())
    compile_mo(language, locale_dir)
    return path


def compiled(language: str, locale_dir: Path = LOCALE_DIR) -> bytes:
    """The `.mo` the `.po` compiles to (fuzzy translations left out, as gettext does)."""
    from babel.messages.mofile import write_mo

    buf = io.BytesIO()
    write_mo(buf, read(po_path(language, locale_dir), language), use_fuzzy=False)
    return buf.getvalue()


def compile_mo(language: str, locale_dir: Path = LOCALE_DIR) -> Path:
    path = mo_path(language, locale_dir)
    path.write_bytes(compiled(language, locale_dir))
    return path


# ---------------------------------------------------------------------------------- check

_BRACE = re.compile(r"\{\{|\}\}|\{[^{}]*\}")
_PERCENT = re.compile(r"%%|%(\([^)]*\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa]")
_MARKUP = re.compile(r"\[/?[a-z][a-z0-9 _#]*\]|\[/\]")


def placeholders(text: str) -> tuple[Counter[str], list[str], Counter[str]]:
    """What a translation must keep: `{fields}` and `%(named)s` (any order), positional `%s`
    (in order), and rich markup tags."""
    braces = Counter(m for m in _BRACE.findall(text) if m not in ("{{", "}}"))
    named: Counter[str] = Counter()
    positional: list[str] = []
    for m in _PERCENT.finditer(text):
        if m.group(0) == "%%":
            continue
        if m.group(1):
            named[m.group(0)] += 1
        else:
            positional.append(m.group(0))
    return braces + named, positional, Counter(_MARKUP.findall(text))


def _describe(found: tuple[Counter[str], list[str], Counter[str]]) -> str:
    keyed, positional, markup = found
    parts = sorted(keyed.elements()) + positional + sorted(markup.elements())
    return " ".join(parts) or "none"


def _key(message: Any) -> tuple[Any, Any]:
    return (message.id, message.context)


def _name(message: Any) -> str:
    text = message.id[0] if isinstance(message.id, tuple | list) else message.id
    text = text if len(text) <= 60 else text[:57] + "..."
    return repr(text) + (f" (context {message.context!r})" if message.context else "")


def problems(template: Any, language: str, locale_dir: Path = LOCALE_DIR) -> list[str]:
    """Every way the language's catalogue falls short of `template` (the source's marked
    messages), one line each; empty when the catalogue is complete and compiled."""
    path = po_path(language, locale_dir)
    if not path.exists():
        return [f"{language}: no catalogue at {path}: run make messages"]
    catalog = read(path, language)
    found: list[str] = []
    if catalog.fuzzy:
        found.append(f"{language}: the catalogue's header is marked fuzzy")
    entries = {_key(m): m for m in catalog if m.id}
    wanted = {_key(m): m for m in template if m.id}
    for key, message in wanted.items():
        if key not in entries:
            found.append(f"{language}: {_name(message)}: not in the catalogue "
                         "(run make messages)")
    for key, entry in entries.items():
        if key not in wanted:
            found.append(f"{language}: {_name(entry)}: obsolete, the source no longer has it")
            continue
        found.extend(f"{language}: {_name(entry)}: {p}"
                     for p in _entry_problems(entry, catalog.num_plurals))
    found.extend(f"{language}: {_name(m)}: obsolete entry (#~) left in the catalogue"
                 for m in catalog.obsolete.values())
    found.extend(_stale_mo(language, locale_dir))
    return found


def _entry_problems(entry: Any, nplurals: int) -> list[str]:
    if entry.fuzzy:
        return ["fuzzy: check the translation and remove the fuzzy flag"]
    if isinstance(entry.id, tuple | list):
        forms = list(entry.string) if isinstance(entry.string, tuple | list) else [entry.string]
        if len(forms) != nplurals:
            return [f"{len(forms)} plural forms, the language has {nplurals}"]
        # With one form it stands for every n, so it follows the English plural.
        english = [entry.id[1]] * nplurals if nplurals == 1 else [
            entry.id[0], *[entry.id[1]] * (nplurals - 1)]
    else:
        forms, english = [entry.string], [entry.id]
    out = []
    for source, text in zip(english, forms, strict=True):
        if not text or not text.strip():
            out.append("not translated")
        elif placeholders(source) != placeholders(text):
            out.append(f"placeholders differ: English has {_describe(placeholders(source))},"
                       f" the translation {_describe(placeholders(text))}")
    return out


def _stale_mo(language: str, locale_dir: Path) -> list[str]:
    path = mo_path(language, locale_dir)
    if not path.exists():
        return [f"{language}: {path.name} is missing: run make messages"]
    with path.open("rb") as fh:
        have = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
    want = gettext.GNUTranslations(io.BytesIO(compiled(language, locale_dir)))._catalog  # type: ignore[attr-defined]
    if have != want:
        return [f"{language}: {path} does not match its .po: run make messages"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m printstation.agent.i18n.maintain",
        description="Extract the marked messages from agent/, merge them into each "
                    "catalogue, compile the .mo files and list what is not translated.")
    parser.add_argument("--check", action="store_true",
                        help="only check the catalogues against the source; write nothing")
    args = parser.parse_args(argv)
    template = extract()
    found: list[str] = []
    for language in CATALOGUE_LANGUAGES:
        if not args.check:
            print(f"updated {update(template, language).relative_to(SOURCE_ROOT)}")
        found.extend(problems(template, language))
    for line in found:
        print(line)
    count = len([m for m in template if m.id])
    print(f"{count} messages in the source; {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
