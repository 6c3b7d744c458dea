"""Brand rules every content unit must pass before it is sent, and a quality score for ranking.

The rules are the brand file's (content/brand.yml): marketers change phrases and limits there, not here.
"""

from __future__ import annotations

import re
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import yaml

from dagster_project.personalization.content import ContentUnit, SegmentBrief

# Upper-case words that are names of things, not shouting.
ALLOWED_ACRONYMS = frozenset(
    "USA US UK EU FAQ FAQS VIP VIPS HTML PDF SMS DIY LED USB TV NYC RSVP HTTP HTTPS".split()
)
UPPER_SHARE_LIMIT = 0.30  # of a subject's letters; sentence case sits near 5%, Title Case at 20-30%
GENERIC_CATEGORIES = frozenset({"general", ""})  # the segment fallback, not a category to mention

LETTERS = re.compile(r"[^\W\d_]+")


class BrandError(ValueError):
    """The brand file is missing or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class Brand:
    company_name: str
    voice: str
    postal_address: str  # printed in the CAN-SPAM footer
    banned_phrases: tuple[str, ...]
    spam_triggers: tuple[str, ...]
    deceptive_prefixes: tuple[str, ...]  # "RE:", "FW:", "FWD:"
    subject_max_length: int = 60
    preheader_max_length: int = 110
    quality_threshold: float = 0.7
    max_exclamation_marks: int = 1  # across subject and headline
    cta_required: bool = True
    site_url: str = ""  # the shop's site: where a product without a valid link of its own points


def load_brand(path: Path) -> Brand:
    path = Path(path)
    if not path.is_file():
        raise BrandError(f"brand file {path} not found; create it (the repository ships content/brand.yml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BrandError(f"brand file {path} is not valid YAML; fix the syntax: {error}") from None
    if not isinstance(data, dict):
        raise BrandError(f"brand file {path} must be a mapping of keys to values, got {type(data).__name__}")
    known = {f.name: f for f in fields(Brand)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise BrandError(
            f"brand file {path}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"fix the spelling or remove them (known keys: {', '.join(known)})"
        )
    missing = [name for name, f in known.items() if name not in data and f.default is MISSING]
    if missing:
        raise BrandError(f"brand file {path}: missing key(s) {', '.join(missing)}; add them")
    hints = typing.get_type_hints(Brand)
    return Brand(**{key: _brand_value(path, key, value, hints[key]) for key, value in data.items()})


def _brand_value(path: Path, key: str, value, hint):
    def fail(expected: str):
        return BrandError(f"brand file {path}: {key} must be {expected}, got {value!r}; fix the value")

    if hint is str:
        if not isinstance(value, str) or not value.strip():
            raise fail("a non-empty text")
        return value.strip()
    if hint is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail("a whole number >= 0")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise fail("a number between 0 and 1")
        return float(value)
    # tuple[str, ...]; an empty value ("banned_phrases:") means none
    value = [] if value is None else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise fail("a list of non-empty texts")
    return tuple(v.strip() for v in value)


@dataclass
class GuardrailReport:
    violations: list[str]  # "banned_phrase:free money", "subject_length", ...
    quality_score: float  # 0..1, see check_content
    threshold: float = 0.7

    @property
    def passed(self) -> bool:
        return not self.violations and self.quality_score >= self.threshold


def humanize_category(slug: str) -> str:
    """"home_garden" -> "home & garden", "outdoor_camping_hiking" -> "outdoor, camping & hiking"."""
    parts = [p for p in slug.strip().lower().replace("-", "_").split("_") if p and p != "and"]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " & " + parts[-1]


def specific_categories(brief: SegmentBrief | None) -> tuple[str, ...]:
    if brief is None:
        return ()
    return tuple(c for c in brief.top_categories if c.strip().lower() not in GENERIC_CATEGORIES)


def phrase_pattern(phrase: str) -> re.Pattern:
    """A whole phrase, any case; a space or hyphen matches either ("risk-free" == "risk free"), a
    straight apostrophe a curly one (LLMs write both)."""
    words = [re.escape(w).replace("'", "['’]") for w in re.split(r"[\s-]+", phrase.strip()) if w]
    return re.compile(r"(?<!\w)" + r"[\s-]+".join(words) + r"(?!\w)", re.IGNORECASE)


def check_content(unit: ContentUnit, brand: Brand, brief: SegmentBrief | None = None) -> GuardrailReport:
    """Brand rules, then a quality score.

    Violations (any one fails the unit): banned phrases and spam triggers anywhere in the text,
    subject and preheader over their limits, a deceptive "RE:"/"FW:" subject, ALL CAPS, a missing
    call to action, too many exclamation marks.

    quality_score starts at 1.0 and loses (then is clamped to 0..1):
      0.15 per violation;
      0.10 for a subject outside 20..50 characters (it gets cut off, or says too little);
      0.20 for a body under 80 or over 900 characters in total (thin or a wall of text);
      0.10 for a headline that repeats the subject (wasted space);
      0.15 when the brief names categories and none is mentioned (not personalized);
      0.10 for a sentence repeated in the body.
    A clean, specific unit scores 1.0; a thin, generic one (short body, no category) scores 0.65,
    below the brand's default threshold of 0.7.
    """
    violations = _violations(unit, brand)
    score = 1.0 - 0.15 * len(violations)
    body = "\n".join(unit.body_paragraphs)
    if not 20 <= len(unit.subject.strip()) <= 50:
        score -= 0.10
    if not 80 <= len(body.strip()) <= 900:
        score -= 0.20
    if _normalized(unit.headline) == _normalized(unit.subject):
        score -= 0.10
    categories = specific_categories(brief)
    if categories and not any(_mentions(unit, category) for category in categories):
        score -= 0.15
    sentences = [_normalized(s) for s in re.split(r"(?<=[.!?])\s+", body)]
    sentences = [s for s in sentences if s]
    if len(sentences) != len(set(sentences)):
        score -= 0.10
    return GuardrailReport(violations, round(min(1.0, max(0.0, score)), 4), brand.quality_threshold)


def _violations(unit: ContentUnit, brand: Brand) -> list[str]:
    everything = "\n".join([unit.subject, unit.preheader, unit.headline, *unit.body_paragraphs, unit.call_to_action])
    violations = [
        f"{code}:{phrase}"
        for code, phrases in (("banned_phrase", brand.banned_phrases), ("spam_trigger", brand.spam_triggers))
        for phrase in dict.fromkeys(phrases)  # once each, in the brand file's order
        if phrase_pattern(phrase).search(everything)
    ]
    if len(unit.subject) > brand.subject_max_length:
        violations.append("subject_length")
    if len(unit.preheader) > brand.preheader_max_length:
        violations.append("preheader_length")
    if any(_deceptive_prefix(p).match(unit.subject) for p in brand.deceptive_prefixes):
        violations.append("deceptive_prefix")
    if _shouts(unit.subject, unit.headline):
        violations.append("all_caps")
    if brand.cta_required and not unit.call_to_action.strip():
        violations.append("missing_call_to_action")
    if (unit.subject + unit.headline).count("!") > brand.max_exclamation_marks:
        violations.append("too_many_exclamation_marks")
    return violations


def _deceptive_prefix(prefix: str) -> re.Pattern:
    # "RE:" also catches "Re :", " re:" and "RE :"; the colon is what makes it look like a reply.
    word = prefix.strip().rstrip(":").strip()
    colon = r"\s*:" if prefix.strip().endswith(":") else r"(?!\w)"
    return re.compile(r"\s*" + re.escape(word) + colon, re.IGNORECASE)


def _shouts(subject: str, headline: str) -> bool:
    for text in (subject, headline):
        if any(len(w) >= 4 and w.isupper() and w not in ALLOWED_ACRONYMS for w in LETTERS.findall(text)):
            return True
    letters = "".join(w for w in LETTERS.findall(subject) if w not in ALLOWED_ACRONYMS)
    return bool(letters) and sum(c.isupper() for c in letters) / len(letters) > UPPER_SHARE_LIMIT


def _mentions(unit: ContentUnit, category: str) -> bool:
    # Any word of the category, singular or plural: "toys" is mentioned by "toy", "home_garden" by "garden".
    text = " ".join([unit.subject, unit.preheader, unit.headline, *unit.body_paragraphs])
    words = [w.removesuffix("s") for w in LETTERS.findall(category.lower().replace("_", " ")) if w != "and"]
    return any(re.search(rf"\b{re.escape(w)}s?\b", text, re.IGNORECASE) for w in words if len(w) >= 3)


def _normalized(text: str) -> str:
    return " ".join(LETTERS.findall(text.lower()))
