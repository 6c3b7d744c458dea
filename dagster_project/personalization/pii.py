"""Finds personal data in written content: emails, phone numbers, card numbers, street addresses and
customer names.

A writer only ever sees a segment brief, so personal data in its output is a leak or a coincidence;
either way it must not reach an inbox. The rules lean towards over-matching (a false positive redacts
a few words, a miss sends someone's data to thousands of people) except where ordinary copy would
trip them: names that are also marketing words, street suffixes that are also common words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

REDACTED = "[redacted]"

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# 13 to 19 digits, single spaces or dashes allowed between them (how people type card numbers).
CARD_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?!\d)")

_WORD = r"[^\W\d_][\w'.-]*"  # a word starting with a letter ("O'Connell", "St.", "Saint-Denis")
# Suffixes that are also everyday words count only capitalized ("12 Abbey Road", "4 PRIVET DRIVE");
# matched in lower case too, "find 3 new looks the easy way" would be an address.
_COMMON_WORD_SUFFIXES = ("Road", "Lane", "Drive", "Court", "Way", "Place", "Terrace")
_STREET_SUFFIX = (
    r"(?:street|avenue|boulevard|strasse|straße|(?-i:"
    + "|".join(f"{word}|{word.upper()}" for word in _COMMON_WORD_SUFFIXES)
    + r"))\b|(?:st|ave|rd|blvd|ln|dr|ct|pl)\b\.?"  # an abbreviation takes its dot
)
STREET_ADDRESS = re.compile(
    # "221B Baker Street", "12 North Main St.", "5 Unter den Linden Strasse"
    rf"\b\d{{1,5}}[a-z]?\s+(?:{_WORD}\s+){{1,4}}(?:{_STREET_SUFFIX})"
    # French addresses put the street type first: "12 rue de la Paix", "12, rue Oberkampf"
    rf"|\b\d{{1,5}}(?:\s*bis|\s*ter)?,?\s+rue(?:\s+{_WORD}){{1,4}}"
    # German addresses put the number last, the suffix inside one word: "Hauptstraße 5"
    rf"|\b[^\W\d_]+(?:strasse|straße)\s+\d{{1,5}}[a-z]?\b",
    re.IGNORECASE,
)

NAME_TOKEN = re.compile(r"[^\W\d_]+")  # runs of letters; "O'Brien" is "O" + "Brien"

# Names that are also everyday marketing words. Flagging them would send half the campaigns to
# review ("Summer sale", "Black Friday", "Hope you love it") while a real leak almost always carries
# another name, an email or an address too. Keep this list short: every entry is a name we let pass.
NAME_STOPLIST = frozenset(
    """
    will may june april august rose grace joy hope faith summer autumn winter dawn sunny penny
    sale new mark bill art chance miles gay young long love best price shop style deal
    black white green brown gray grey gold king rich little
    """.split()
)


@dataclass(frozen=True)
class PiiFinding:
    kind: str  # email | phone | card | street_address | name
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class PiiDetector:
    """Detects personal data; build it once per run (the name set is built from the profile table)."""

    def __init__(self, names: Iterable[str] = (), phone_region: str = "US"):
        region = phone_region.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"phone_region {phone_region!r} is not a region libphonenumber knows; "
                "use an ISO 3166 alpha-2 code such as 'US', 'GB' or 'DE'"
            )
        self.phone_region = region
        # One set lookup per word of text, however many names: a compiled alternation of ~100K names
        # is slow to build, a loop of regexes slow to run. Compound names count by their parts:
        # "Mary-Jane O'Brien" gives "mary", "jane", "brien".
        self.names = frozenset(
            part.casefold()
            for name in names
            if name
            for part in NAME_TOKEN.findall(name)
            if len(part) >= 3 and part.casefold() not in NAME_STOPLIST
        )

    def find(self, text: str) -> list[PiiFinding]:
        """Every finding, sorted by start; where two overlap, the one starting first (then the longer)
        wins, so "anna@example.com" is one email and not a name inside an email."""
        candidates = [*self._emails(text), *self._cards(text), *self._phones(text),
                      *self._addresses(text), *self._names(text)]
        candidates.sort(key=lambda f: (f.start, -(f.end - f.start)))
        findings: list[PiiFinding] = []
        for candidate in candidates:
            if not findings or candidate.start >= findings[-1].end:
                findings.append(candidate)
        return findings

    def contains_pii(self, text: str) -> bool:
        return bool(self.find(text))

    def redact(self, text: str) -> str:
        pieces, position = [], 0
        for finding in self.find(text):
            pieces += [text[position:finding.start], REDACTED]
            position = finding.end
        pieces.append(text[position:])
        return "".join(pieces)

    def _emails(self, text: str) -> Iterable[PiiFinding]:
        return (PiiFinding("email", m.start(), m.end()) for m in EMAIL.finditer(text))

    def _cards(self, text: str) -> Iterable[PiiFinding]:
        # Luhn separates card numbers from order numbers, tracking codes and the like (9 in 10 fail).
        for match in CARD_CANDIDATE.finditer(text):
            if luhn_valid(re.sub(r"\D", "", match.group())):
                yield PiiFinding("card", match.start(), match.end())

    def _phones(self, text: str) -> Iterable[PiiFinding]:
        # VALID: the number must exist in the numbering plan, so dates and prices are not phones.
        # Numbers written with +CC are found whatever the region.
        matcher = phonenumbers.PhoneNumberMatcher(text, self.phone_region, leniency=phonenumbers.Leniency.VALID)
        return (PiiFinding("phone", m.start, m.end) for m in matcher)

    def _addresses(self, text: str) -> Iterable[PiiFinding]:
        return (PiiFinding("street_address", m.start(), m.end()) for m in STREET_ADDRESS.finditer(text))

    def _names(self, text: str) -> Iterable[PiiFinding]:
        if not self.names:
            return ()
        return (
            PiiFinding("name", m.start(), m.end())
            for m in NAME_TOKEN.finditer(text)
            if m.group().casefold() in self.names
        )
