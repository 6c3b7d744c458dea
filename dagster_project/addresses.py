"""Email addresses: the one place that says what a valid address is and how two spellings of one
address compare. dbt's `normalized_email` macro (dbt/macros/addresses.sql) is the SQL twin of
`normalized_address_sql`; tests hold the two against each other and against this Python function.

Valid means a dot-atom local part and a domain of dot-separated labels (RFC 5321/5322; tests hold
every accepted address against `email.headerregistry.Address`, the standard library's parser), with
no quotes, commas, angle brackets, whitespace or control characters anywhere. Non-ASCII letters are
allowed (RFC 6531, SMTPUTF8): the sender decides whether the destination can take them.

Normalized means: spaces around the address dropped and ASCII letters lower-cased. Only ASCII is
folded, because lower() of other letters depends on the database's locale, and only the space is
trimmed, because DuckDB's trim() also drops other whitespace (U+00A0) and PostgreSQL's does not:
both warehouses must agree on every address.
"""

from __future__ import annotations

import re
import string

MAX_ADDRESS_LENGTH = 254  # RFC 5321 path limit minus the angle brackets
MAX_LOCAL_LENGTH = 64

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]"
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9\-\u0080-\U0010FFFF]{1,63}(?<!-)")
_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff0-\uffff]")
_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def normalized_address(value: str) -> str:
    """The form two spellings of one address share: '  Jane@Example.COM ' -> 'jane@example.com'."""
    return value.strip(" ").translate(_ASCII_FOLD)


def normalized_address_sql(expression: str) -> str:
    """SQL for normalized_address(expression), the same on DuckDB and PostgreSQL."""
    return f"translate(trim({expression}, ' '), '{string.ascii_uppercase}', '{string.ascii_lowercase}')"


def address_problem(value: str) -> str | None:
    """Why `value` is not a usable address (a short reason), or None when it is one."""
    address = value.strip(" ")
    if len(address) > MAX_ADDRESS_LENGTH:
        return f"longer than {MAX_ADDRESS_LENGTH} characters"
    if _FORBIDDEN.search(address):
        return "contains whitespace or control characters"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return "not of the form local@domain"
    if len(local) > MAX_LOCAL_LENGTH:
        return f"local part longer than {MAX_LOCAL_LENGTH} characters"
    if not _LOCAL.fullmatch(local):
        return "local part has characters an address cannot carry unquoted (quotes, commas, @, brackets, ..)"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return "domain is not a dotted host name"
    return None
