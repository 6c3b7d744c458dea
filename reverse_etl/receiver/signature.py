"""SendGrid's Signed Event Webhook: an ECDSA (P-256, SHA-256) signature over the value of the
X-Twilio-Email-Event-Webhook-Timestamp header followed by the raw request body, sent base64-encoded
(DER) in X-Twilio-Email-Event-Webhook-Signature. The verification key is the one SendGrid shows
under Mail Settings > Event Webhook (base64 DER SubjectPublicKeyInfo), or the same key as PEM.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dagster_project.settings import SettingsError

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
KEY_VARIABLE = "MAILROOM_SENDGRID_WEBHOOK_PUBLIC_KEY"
FUTURE_SKEW_SECONDS = 60  # a sender's clock may run this far ahead of ours
# Unix seconds have 10 digits until the year 2286; a longer value is not a timestamp (and int() of
# thousands of digits costs time, or raises past Python's 4,300-digit limit).
MAX_TIMESTAMP_DIGITS = 12
# A base64 DER ECDSA P-256 signature is at most 96 characters; allow for whitespace, refuse the rest
# before decoding anything.
MAX_SIGNATURE_CHARS = 256


class SignatureRejected(Exception):
    """The request is not provably from SendGrid (or is a replay); str(error) says why, for the 401."""


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its configured text; raises SettingsError naming the variable."""
    text = text.strip()
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise SettingsError(
            f"{KEY_VARIABLE} is not a public key: paste the Event Webhook verification key exactly as "
            "SendGrid shows it (base64), or as a PEM 'BEGIN PUBLIC KEY' block"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SettingsError(f"{KEY_VARIABLE} is not an ECDSA P-256 key, which SendGrid's signed webhook uses")
    return key


@dataclass(frozen=True)
class WebhookVerifier:
    public_key: ec.EllipticCurvePublicKey | None  # None: not configured, every request is refused
    max_age_seconds: float

    def check_timestamp(self, timestamp: str | None, now: float) -> None:
        """Refuse requests without a timestamp, or one outside the replay window, before the body is read."""
        if self.public_key is None:
            raise SignatureRejected(
                f"signed webhook verification is not configured: set {KEY_VARIABLE} to the verification "
                "key SendGrid shows for the Event Webhook"
            )
        if not timestamp:
            raise SignatureRejected(f"missing {TIMESTAMP_HEADER} header")
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > MAX_TIMESTAMP_DIGITS:
            raise SignatureRejected(f"{TIMESTAMP_HEADER} must be Unix seconds (at most {MAX_TIMESTAMP_DIGITS} digits)")
        age = now - int(timestamp)
        if age > self.max_age_seconds:
            raise SignatureRejected(f"signed timestamp is {int(age)} s old (limit {int(self.max_age_seconds)} s): "
                                    "replay refused")
        if age < -FUTURE_SKEW_SECONDS:
            raise SignatureRejected("signed timestamp is in the future")

    def verify(self, signature: str | None, timestamp: str, body: bytes) -> None:
        """Raise SignatureRejected unless `signature` signs timestamp + body under the configured key."""
        if not signature:
            raise SignatureRejected(f"missing {SIGNATURE_HEADER} header")
        if len(signature) > MAX_SIGNATURE_CHARS:
            raise SignatureRejected(f"{SIGNATURE_HEADER} is longer than a signature can be")
        try:
            der = base64.b64decode(signature.strip(), validate=True)
            self.public_key.verify(der, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            raise SignatureRejected("signature does not match the request body and timestamp") from None
