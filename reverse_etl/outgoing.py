"""One message on its way out: what every destination needs, built from ops.campaign_messages."""

from __future__ import annotations

import binascii
import email.utils
import hashlib
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

    @property
    def tracking_args(self) -> dict[str, str]:
        """What travels in provider tracking fields (SendGrid custom_args): ids only, never PII."""
        return {"mailroom_message_id": self.message_id, "campaign_id": self.campaign_id, "variant_id": self.variant_id}

    def to_bytes(self, from_email: str, from_name: str) -> bytes:
        """The RFC 5322 message (text and HTML alternatives) that SMTP and the outbox hand over.

        Composed directly rather than with email.message (2.5 ms a message; this is ~20x faster):
        UTF-8 bodies in quoted-printable, CRLF line ends, headers RFC 2047-encoded only when they are not
        plain ASCII, and a boundary containing "=_", which quoted-printable text can never contain."""
        headers = {
            "From": email.utils.formataddr((from_name, from_email)),
            "To": self.to_email,
            "Subject": self.subject,
            "Date": email.utils.format_datetime(datetime.now(timezone.utc)),
            **({"Message-ID": self.message_id} if "Message-ID" not in self.headers else {}),
            **self.headers,
        }
        if self.deliver_at:
            headers["X-Mailroom-Deliver-At"] = self.deliver_at.isoformat(sep=" ") + " UTC"
        boundary = "=_mailroom_" + hashlib.sha256(self.message_id.encode()).hexdigest()[:24]
        lines = [f"{name}: {_header_value(value)}" for name, value in headers.items()]
        lines += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"', ""]
        for subtype, body in (("plain", self.text), ("html", self.html)):
            lines += [f"--{boundary}", f'Content-Type: text/{subtype}; charset="utf-8"',
                      "Content-Transfer-Encoding: quoted-printable", "", _quoted_printable(body)]
        lines += [f"--{boundary}--", ""]
        return "\r\n".join(lines).encode("ascii")


def _header_value(value: str) -> str:
    value = " ".join(str(value).split())  # one line, always
    if value.isascii() and len(value) <= 998 - 80:
        return value
    return Header(value, "utf-8").encode()


def _quoted_printable(body: str) -> str:
    normalized = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(normalized, istext=True).decode("ascii").replace("\n", "\r\n")


def message_file_stem(message_id: str) -> str:
    """A file-name-safe form of a Message-ID: its local part, "<3f2a...@mail.example.com>" -> "3f2a..."."""
    local = message_id.strip("<>").split("@", 1)[0]
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in local) or "message"
