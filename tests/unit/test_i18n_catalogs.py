"""The Simplified Chinese catalogs: complete, compiled, and up to date with the sources.

Every msgid of locale/zh_Hans/LC_MESSAGES/django.po and djangojs.po has a translation
that is not fuzzy and keeps the original's placeholders and markup; the committed .mo
files hold exactly what the .po files say (read back with Python's gettext, so no
gettext tools are needed here); every literal string the templates and the page's
modules mark is in a catalog (`make messages` was run after the strings changed).
"""

import ast
import gettext
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES"
DOMAINS = ("django", "djangojs")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|<[^>]+>")
_LINE = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?) (".*")$')
# `_("...")` in the page's modules; `{% translate "..." %}` in the templates.
JS_MARKED = re.compile(r'\b_\(\s*"((?:[^"\\]|\\.)*)"\s*\)')
TEMPLATE_MARKED = re.compile(r'{%\s*translate\s+"([^"]*)"\s*%}')


@dataclass
class Entry:
    """One catalog entry: its flags and its fields (msgid, msgstr, msgstr[0]...)."""

    flags: set[str] = field(default_factory=set)
    fields: dict[str, str] = field(default_factory=dict)


def read_po(path: Path) -> list[Entry]:
    """The entries of a .po file, header first; obsolete (#~) entries are skipped."""
    entries: list[Entry] = []
    entry, key = Entry(), ""
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if entry.fields:
                entries.append(entry)
            entry, key = Entry(), ""
        elif line.startswith("#,"):
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif found := _LINE.match(line):
            key = found[1]
            entry.fields[key] = ast.literal_eval(found[2])
        else:
            entry.fields[key] += ast.literal_eval(line)
    return entries


def translations(entry: Entry) -> list[str]:
    """The msgstr, or every msgstr[n] of a plural entry."""
    return [value for key, value in entry.fields.items() if key.startswith("msgstr")]


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_message_is_translated_and_none_is_fuzzy(domain: str) -> None:
    header, *entries = read_po(MESSAGES / f"{domain}.po")
    assert header.fields["msgid"] == ""
    assert "Language: zh_Hans" in header.fields["msgstr"]
    assert "Plural-Forms: nplurals=1; plural=0;" in header.fields["msgstr"]
    assert "fuzzy" not in header.flags
    assert len(entries) > 10  # the parser read the catalog
    untranslated = [e.fields["msgid"] for e in entries if not all(translations(e))]
    fuzzy = [e.fields["msgid"] for e in entries if "fuzzy" in e.flags]
    assert (untranslated, fuzzy) == ([], [])


@pytest.mark.parametrize("domain", DOMAINS)
def test_translations_keep_the_placeholders_and_markup(domain: str) -> None:
    broken = []
    for entry in read_po(MESSAGES / f"{domain}.po")[1:]:
        wanted = sorted(PLACEHOLDER.findall(entry.fields["msgid"]))
        for text in translations(entry):
            if sorted(PLACEHOLDER.findall(text)) != wanted:
                broken.append((entry.fields["msgid"], text))
    assert broken == []


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_compiled_catalog_holds_exactly_the_po_file(domain: str) -> None:
    with (MESSAGES / f"{domain}.mo").open("rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)
    entries = read_po(MESSAGES / f"{domain}.po")[1:]
    stale = [key(entry) for entry in entries if compiled_text(catalog, entry) != first(entry)]
    assert stale == []
    held = catalog._catalog  # type: ignore[attr-defined]
    singular = {item[0] if isinstance(item, tuple) else item for item in held} - {""}
    assert singular == {key(entry) for entry in entries}


def key(entry: Entry) -> str:
    """The entry's key in a compiled catalog: its msgid, after its context if it has one."""
    msgid = entry.fields["msgid"]
    context = entry.fields.get("msgctxt")
    return msgid if context is None else f"{context}\x04{msgid}"


def first(entry: Entry) -> str:
    """The entry's translation (of the singular, for a plural entry)."""
    return entry.fields.get("msgstr", entry.fields.get("msgstr[0]", ""))


def compiled_text(catalog: gettext.GNUTranslations, entry: Entry) -> str:
    """What the compiled catalog translates the entry's msgid (singular) to."""
    msgid, context = entry.fields["msgid"], entry.fields.get("msgctxt")
    if "msgid_plural" in entry.fields:
        return catalog.ngettext(msgid, entry.fields["msgid_plural"], 1)
    return catalog.gettext(msgid) if context is None else catalog.pgettext(context, msgid)


def marked_strings(pattern: re.Pattern[str], files: list[Path]) -> set[str]:
    """The literal strings ``pattern`` finds in ``files``, JSON/JS escapes undone."""
    found = set()
    for path in files:
        for literal in pattern.findall(path.read_text(encoding="utf-8")):
            found.add(ast.literal_eval(f'"{literal}"'))
    return found


def test_every_marked_string_of_the_pages_is_in_a_catalog() -> None:
    js = marked_strings(JS_MARKED, sorted((ROOT / "static" / "js").rglob("*.js")))
    html = marked_strings(TEMPLATE_MARKED, sorted((ROOT / "templates").rglob("*.html")))
    assert {"Idle", "You (typed)"} <= js  # the scan sees the strings
    assert {"Log in", "Language", "Start"} <= html
    msgids = {
        domain: {e.fields["msgid"] for e in read_po(MESSAGES / f"{domain}.po")}
        for domain in DOMAINS
    }
    assert (sorted(js - msgids["djangojs"]), sorted(html - msgids["django"])) == ([], [])
