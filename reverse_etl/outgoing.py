"""One message on its way out: what every destination needs, built from ops.campaign_messages."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage

# CRLF line ends, and header lines up to RFC 5322's 998 characters: a long List-Unsubscribe URL must stay
# a plain <URL>, not be folded into encoded words that no client would open.
MIME_POLICY = policy.SMTP.clone(max_line_length=998)


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

    @property
    def tracking_args(self) -> dict[str, str]:
        """What travels in provider tracking fields (SendGrid custom_args): ids only, never PII."""
        return {"mailroom_message_id": self.message_id, "campaign_id": self.campaign_id, "variant_id": self.variant_id}

    def to_mime(self, from_email: str, from_name: str) -> EmailMessage:
        """The RFC 5322 message (text and HTML alternatives) that SMTP and the outbox hand over."""
        mime = EmailMessage(policy=MIME_POLICY)
        mime["From"] = email.utils.formataddr((from_name, from_email))
        mime["To"] = self.to_email
        mime["Subject"] = self.subject
        mime["Date"] = email.utils.format_datetime(datetime.now(timezone.utc))
        for name, value in self.headers.items():
            mime[name] = value
        if "Message-ID" not in self.headers:
            mime["Message-ID"] = self.message_id
        mime.set_content(self.text)
        mime.add_alternative(self.html, subtype="html")
        return mime


def message_file_stem(message_id: str) -> str:
    """A file-name-safe form of a Message-ID: its local part, "<3f2a...@mail.example.com>" -> "3f2a..."."""
    local = message_id.strip("<>").split("@", 1)[0]
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in local) or "message"
