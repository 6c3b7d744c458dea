"""Phone numbers written the many ways people write them: '+44 20 7946 0958', '(415) 555-0132',
'030 1234567', '+1-604-555-0199', '0049 30 1234567'. Every way of writing one number parses (with the
customer's country as default region) to the same E.164 number, and numbers never repeat across
customers: the subscriber digits are a bijection of the customer index."""

from __future__ import annotations

from dataclasses import dataclass

_MULTIPLIER = 2_654_435_761  # prime, so coprime with every modulus below: index -> digits is a bijection
_SALT = 48_611
SECOND_NUMBER_OFFSET = 5_000_000  # index space for customers' second (mobile) numbers


def subscriber_digits(index: int, length: int, lead: str = "23456789") -> str:
    """`length` digits whose first is one of `lead` (numbering plans leave some unassigned), distinct
    for distinct index below len(lead) * 10**(length-1) (at least 2 million for every plan here)."""
    tail = 10 ** (length - 1)
    value = (index * _MULTIPLIER + _SALT) % (len(lead) * tail)
    return f"{lead[value // tail]}{value % tail:0{length - 1}d}"


def _group(digits: str, pattern: str) -> str:
    out, position = [], 0
    for char in pattern:
        if char == "N":
            out.append(digits[position])
            position += 1
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True)
class Phone:
    calling_code: str
    trunk: str
    prefix: str
    rest: str
    grouping: str
    sep: str
    styles: tuple[str, ...]

    @property
    def e164(self) -> str:
        return f"+{self.calling_code}{self.prefix}{self.rest}"

    def format(self, style: str) -> str:
        cc, trunk, prefix, rest, sep = self.calling_code, self.trunk, self.prefix, self.rest, self.sep
        grouped = _group(rest, self.grouping)
        if style == "national":
            return f"{trunk}{prefix}{sep}{grouped}"
        if style == "intl":
            return f"+{cc} {prefix}{sep}{grouped}"
        if style == "intl0":
            return f"+{cc} (0){prefix}{sep}{grouped}"
        if style == "dbl0":
            return f"00{cc} {prefix} {rest}"
        if style == "e164":
            return f"+{cc}{prefix}{rest}"
        if style == "compact":
            return f"{trunk}{prefix}{rest}"
        if style == "slash":
            return f"{trunk}{prefix}/{rest}"
        # North American styles
        if style == "paren":
            return f"({prefix}) {grouped}"
        if style == "dash_intl":
            return f"+1-{prefix}-{grouped}"
        if style == "dots":
            return f"{prefix}.{grouped.replace('-', '.')}"
        if style == "dashes":
            return f"{prefix}-{grouped}"
        if style == "one_paren":
            return f"1 ({prefix}) {grouped}"
        raise ValueError(f"unknown phone style {style!r}")

    def written(self, rng) -> str:
        """The number as one person typed it into one form."""
        return self.format(rng.choice(self.styles))


def landline(country, region, index: int, rng) -> Phone:
    prefixes, rest_length, grouping, sep, lead = region.phone
    return Phone(country.calling_code, country.trunk, rng.choice(prefixes),
                 subscriber_digits(index, rest_length, lead), grouping, sep, country.phone_styles)


def mobile(country, index: int, rng) -> Phone | None:
    if country.mobile is None:
        return None
    prefixes, rest_length, grouping, sep, *lead = country.mobile
    styles = tuple(s for s in country.phone_styles if s != "slash")
    return Phone(country.calling_code, country.trunk, rng.choice(prefixes),
                 subscriber_digits(index, rest_length, *lead), grouping, sep, styles)
