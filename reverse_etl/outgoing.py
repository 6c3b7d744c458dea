"""One message on its way out: what every destination needs, built from ops.campaign_messages."""

from __future__ import annotations

import binascii
import email.utils
import functools
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.header import Header


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str  # RFC 5322 Message-ID, "<hex@domain>": the idempotency key on every destination
    campaign_id: str
    variant_id: str
    to_email: str
    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)  # Message-ID, List-Unsubscribe, ...
    deliver_at: datetime | None = None  # naive UTC; None or past = now
    customer_id: str = ""
    send_at: datetime | None = None  # when personalization planned it (naive UTC)
    rendered_at: datetime | None = None  # when it was written (naive UTC, the wall clock)

    @property
    def tracking_args(self) -> dict[str, str]:
        """What travels in provider tracking fields (SendGrid custom_args): ids only, never PII."""
        return {"mailroom_message_id": self.message_id, "campaign_id": self.campaign_id, "variant_id": self.variant_id}

    @property
    def needs_smtputf8(self) -> bool:
        """An internationalized address (RFC 6531): only a server offering SMTPUTF8 can take it."""
        return not self.to_email.isascii()

    def to_bytes(self, from_email: str, from_name: str, date: str | None = None) -> bytes:
        """The RFC 5322 message (text and HTML alternatives) that SMTP and the outbox hand over.

        Composed directly rather than with email.message (2.5 ms a message; this is ~20x faster):
        UTF-8 bodies in quoted-printable, CRLF line ends, long headers folded with CRLF, and a boundary
        containing "=_", which quoted-printable text can never contain. Only text headers (Subject)
        are RFC 2047-encoded when they are not plain ASCII; an internationalized recipient makes the
        message an RFC 6532 one (UTF-8 headers, sent with SMTPUTF8). Raises MessageCompositionError
        when the message cannot be written (that message fails alone, with the reason). `date`: the
        Date header (message_date()), for a caller writing many messages at once; default now."""
        utf8 = self.needs_smtputf8
        headers = {
            "From": _from_address(from_name, from_email),
            "To": self.to_email,
            "Subject": self.subject,
            "Date": date or message_date(),
            **({"Message-ID": self.message_id} if "Message-ID" not in self.headers else {}),
            **self.headers,
        }
        if self.deliver_at:
            headers["X-Mailroom-Deliver-At"] = self.deliver_at.isoformat(sep=" ") + " UTC"
        boundary = "=_mailroom_" + hashlib.sha256(self.message_id.encode()).hexdigest()[:24]
        lines = [header_line(name, value, utf8) for name, value in headers.items()]
        lines += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"', ""]
        for subtype, body in (("plain", self.text), ("html", self.html)):
            lines += [f"--{boundary}", f'Content-Type: text/{subtype}; charset="utf-8"',
                      "Content-Transfer-Encoding: quoted-printable", "", _quoted_printable(body)]
        lines += [f"--{boundary}--", ""]
        try:
            return "\r\n".join(lines).encode("utf-8" if utf8 else "ascii")
        except UnicodeError as error:  # a lone surrogate from a broken template
            raise MessageCompositionError(f"the message cannot be encoded: {error}") from error


def message_date(when: datetime | None = None) -> str:
    """An RFC 5322 Date header value for `when` (aware; default now)."""
    return email.utils.format_datetime(when or datetime.now(timezone.utc))


@functools.lru_cache(maxsize=64)
def _from_address(from_name: str, from_email: str) -> str:
    return email.utils.formataddr((from_name, from_email))


class MessageCompositionError(ValueError):
    """The message cannot be written as valid MIME (a header that cannot be encoded, a line too long)."""


# Unstructured headers: the only ones where RFC 2047 encoded words may stand for non-ASCII text. An
# encoded List-Unsubscribe URL, Message-ID or address is no longer one.
ENCODABLE_HEADERS = frozenset({"subject", "comments", "keywords"})
FOLD_AT = 78  # RFC 5322: lines SHOULD be at most 78 characters, and MUST be at most 998
MAX_LINE = 998


def header_line(name: str, value, utf8: bool = False) -> str:
    """'Name: value', folded with CRLF at spaces when longer than 78 characters."""
    text = " ".join(str(value).split())  # one logical line, whatever the value held
    if not text.isascii() and not utf8:
        if name.lower() not in ENCODABLE_HEADERS:
            raise MessageCompositionError(
                f"header {name} has non-ASCII characters and is not a text header, so it cannot be RFC 2047-encoded")
        try:
            return f"{name}: " + Header(text, "utf-8", header_name=name).encode(linesep="\r\n", maxlinelen=FOLD_AT)
        except UnicodeError as error:  # e.g. a lone surrogate from a broken template
            raise MessageCompositionError(f"header {name} cannot be encoded: {error}") from error
    return _fold(f"{name}: {text}", name)


def _fold(line: str, name: str) -> str:
    """Fold at spaces (never right after the colon: the value starts on the first line); a word longer
    than a line (a URL) stays whole, up to the 998-character limit."""
    if len(line) <= FOLD_AT:  # most headers: nothing to fold, and far below the 998-byte limit
        return line
    words = line.split(" ")
    lines, current = [], words[0] + " " + words[1] if len(words) > 1 else words[0]
    for word in words[2:]:
        if len(current) + 1 + len(word) > FOLD_AT:
            lines.append(current)
            current = " " + word
        else:
            current += " " + word
    lines.append(current)
    if any(len(part.encode()) > MAX_LINE for part in lines):
        raise MessageCompositionError(f"header {name} has a word longer than {MAX_LINE} characters, which no "
                                      "folding can carry")
    return "\r\n".join(lines)


def _quoted_printable(body: str) -> str:
    try:
        normalized = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    except UnicodeError as error:  # a lone surrogate from a broken template
        raise MessageCompositionError(f"the body cannot be encoded as UTF-8: {error}") from error
    return binascii.b2a_qp(normalized, istext=True).decode("ascii").replace("\n", "\r\n")


def message_file_stem(message_id: str) -> str:
    """A file-name-safe form of a Message-ID: its local part, "<3f2a...@mail.example.com>" -> "3f2a..."."""
    local = message_id.strip("<>").split("@", 1)[0]
    return _UNSAFE_IN_NAME.sub("_", local) or "message"


# Anything but a letter or digit (str.isalnum, as the regular expression's \w is with "_"), "-", "_" or ".".
_UNSAFE_IN_NAME = re.compile(r"[^\w.-]")
