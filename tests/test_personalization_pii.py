"""PII detection in written content: each kind found and redacted, ordinary marketing copy left alone."""

import pytest

from dagster_project.personalization.pii import PiiDetector, PiiFinding

NAMES = ["Anna", "Okafor", "June", "Al", "Mary-Jane", "O'Brien", "Müller"]


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector(names=NAMES)


def found(detector: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start:f.end]) for f in detector.find(text)]


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("Questions? Write to help.desk+vip@mail.example.co.uk today.", "email", "help.desk+vip@mail.example.co.uk"),
        ("Call us at (415) 555-0132 before noon.", "phone", "(415) 555-0132"),
        ("Call us at 415.555.0132 before noon.", "phone", "415.555.0132"),
        ("Our London desk: +44 20 7946 0958.", "phone", "+44 20 7946 0958"),
        ("Paid with 4111 1111 1111 1111 yesterday.", "card", "4111 1111 1111 1111"),
        ("Paid with 5500-0000-0000-0004 yesterday.", "card", "5500-0000-0000-0004"),
        ("Paid with 378282246310005 yesterday.", "card", "378282246310005"),
        ("Ship it to 221B Baker Street, London.", "street_address", "221B Baker Street"),
        ("Ship it to 12 north main st, please.", "street_address", "12 north main st"),
        ("Ship it to 4 PRIVET DRIVE, Surrey.", "street_address", "4 PRIVET DRIVE"),
        ("Ship it to 12 rue de la Paix, Paris.", "street_address", "12 rue de la Paix"),
        ("Ship it to 5 Unter den Linden Strasse, Berlin.", "street_address", "5 Unter den Linden Strasse"),
        ("Ship it to Hauptstraße 5, Berlin.", "street_address", "Hauptstraße 5"),
        ("Hi anna, your picks are in.", "name", "anna"),
        ("Hi OKAFOR, your picks are in.", "name", "OKAFOR"),
        ("Hi müller, your picks are in.", "name", "müller"),
    ],
)
def test_each_kind_is_found_and_redacted(detector, text, kind, value):
    assert found(detector, text) == [(kind, value)]
    assert detector.contains_pii(text)
    assert detector.redact(text) == text.replace(value, "[redacted]")


def test_compound_names_match_by_their_parts(detector):
    text = "For Mary-Jane O'Brien and Jane."
    assert found(detector, text) == [("name", "Mary"), ("name", "Jane"), ("name", "Brien"), ("name", "Jane")]
    assert detector.redact(text) == "For [redacted]-[redacted] O'[redacted] and [redacted]."


def test_digit_runs_failing_luhn_are_not_cards(detector):
    for text in ["Your order 1234567890123 has shipped.", "Tracking 4111 1111 1111 1112 is live."]:
        assert detector.find(text) == []


def test_names_match_whole_words_only_and_skip_stoplisted_and_short_names(detector):
    # "Annabelle" contains "Anna"; "June" is stoplisted (a month); "Al" is too short to be a name here.
    text = "Annabelle loves the June edit, as does Al. Shop Banana prints."
    assert detector.find(text) == []


def test_an_email_wins_over_the_name_inside_it(detector):
    text = "Reach anna@example.com for help."
    assert detector.find(text) == [PiiFinding("email", 6, 22)]


def test_findings_are_sorted_and_redaction_keeps_the_rest(detector):
    text = "Anna, call +1 415 555 0132 or mail anna@example.com; we ship to 10 Downing Street."
    kinds = [kind for kind, _ in found(detector, text)]
    assert kinds == ["name", "phone", "email", "street_address"]
    starts = [f.start for f in detector.find(text)]
    assert starts == sorted(starts)
    assert detector.redact(text) == "[redacted], call [redacted] or mail [redacted]; we ship to [redacted]."


def test_clean_marketing_copy_has_no_findings(detector):
    text = (
        "Summer sale: 20% off new arrivals in home & garden. Find 3 new looks the easy way, "
        "pick your place on the patio and save up to 50 on 2 items until 2026-11-30. "
        "Hope you love this season's best style deals, with grace and joy. Order #1042 ships in 24 hours."
    )
    assert detector.find(text) == []
    assert detector.redact(text) == text


def test_names_scale_to_a_large_profile_table():
    # 100K names: a regex alternation or a loop would be too slow to build or to run; a set is not.
    names = ["".join(chr(97 + (i // 26**k) % 26) for k in range(4)) + "son" for i in range(100_000)]
    detector = PiiDetector(names=names + ["Okafor"])
    assert len(detector.names) == 100_001
    text = f"Thanks, okafor and {names[99_999].upper()}! Best, the team."
    assert found(detector, text) == [("name", "okafor"), ("name", names[99_999].upper())]


def test_an_unknown_phone_region_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="'XX'.*ISO 3166"):
        PiiDetector(phone_region="XX")
