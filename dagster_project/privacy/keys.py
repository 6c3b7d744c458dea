"""Keyed hashes that stand for a person's identifiers wherever Mailroom must record something about them
without holding the identifier: privacy requests, erasure proofs, audit entries.

    subject_key = <key id> ":" HMAC-SHA256(privacy key, identifier type "\\x1f" normalized value)

The key id (the first 8 hex digits of the key's SHA-256) says which key made a hash, so hashes made
before a key rotation can still be matched with the old key. Emails are normalized as everywhere else
(addresses.normalized_address); other identifiers are taken as given.
"""

from __future__ import annotations

import hashlib
import hmac

from dagster_project.addresses import normalized_address

IDENTIFIER_TYPES = ("email", "user_id", "anonymous_id", "phone", "crm_contact_id", "customer_id")


class SubjectKeys:
    def __init__(self, key: bytes):
        self._key = key
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    def subject_key(self, identifier_type: str, value: str) -> str:
        if identifier_type not in IDENTIFIER_TYPES:
            raise ValueError(f"unknown identifier type {identifier_type!r}; known: {', '.join(IDENTIFIER_TYPES)}")
        normalized = normalized_address(value) if identifier_type == "email" else value
        digest = hmac.new(self._key, f"{identifier_type}\x1f{normalized}".encode(), hashlib.sha256).hexdigest()
        return f"{self.key_id}:{digest}"

    def __repr__(self) -> str:  # never the key
        return f"SubjectKeys(key_id={self.key_id!r})"
