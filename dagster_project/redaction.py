"""Credentials out of messages: a URL as it may be printed in an error or a log line.

redact_url never raises, because it is called exactly when a URL could not be parsed: it works on the
text, not on a parsed URL, and redacts too much rather than too little when the URL is malformed
(a password with an unescaped "@" or "/", an "@" further on in the query).
"""

from __future__ import annotations

import re

MASK = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # RFC 3986; "user:pa" before a "://" in a password is none
# Query parameters that carry credentials in SQLAlchemy and libpq URLs (?password=..., ?sslpassword=...).
_SECRET_PARAMETER = re.compile(
    r"(?i)(?P<name>(?:^|[?&;])[^=&;?#]*(?:password|passwd|pwd|secret|token|api_?key)[^=&;?#]*=)[^&;#]*")


def redact_url(url: str) -> str:
    """`url` with the password of its user info and the values of credential query parameters as ***;
    just *** when it is not a URL at all."""
    scheme, separator, rest = str(url).partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        return MASK  # not a URL at all: it could be anything, a password pasted in the wrong variable too
    rest = _redact_user_info(rest)
    return scheme + separator + _SECRET_PARAMETER.sub(lambda m: m.group("name") + MASK, rest)


def _redact_user_info(rest: str) -> str:
    # The user info ends at the LAST "@": a password may hold an unescaped "@", and an "@" later on
    # (in the query) only widens what is hidden. The password starts after the first ":" before it.
    at = rest.rfind("@")
    if at < 0:
        return rest
    colon = rest.find(":", 0, at)
    if colon < 0:
        return rest
    return rest[:colon + 1] + MASK + rest[at:]
