"""Turn one content unit plus one customer's merge fields into a sendable message (HTML + text).

Templates are compiled once per renderer, in a sandbox; customer data and LLM-written words reach
them only as variables, never as template source, so "{{ 7*7 }}" in a name stays text.

Every message carries an RFC 8058 one-click unsubscribe link whose token is opaque: the customer id,
campaign and address inside it are encrypted and authenticated with a key derived from the
unsubscribe secret, so the link reveals nothing and the receiver (reverse_etl/receiver) can trust it.
Its Message-ID, which providers log and return in their events, is a keyed hash under another key
derived from the same secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from dagster_project.personalization.content import ContentUnit

HTML_SUFFIX = ".html.j2"
TEXT_SUFFIX = ".txt.j2"
FALLBACK_FIRST_NAME = "there"  # "Hi there,"

# Control characters and Unicode line/paragraph separators: none may reach a header line.
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Inside a link: no whitespace of any kind (a space would end the URL in the text part).
_NOT_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
MAX_URL_LENGTH = 2048
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}


TOKEN_VERSION = b"\x01"
_TOKEN_KEY_INFO = b"mailroom unsubscribe token v1"
_MESSAGE_ID_KEY_INFO = b"mailroom message id v1"
_NONCE_BYTES = 12
_TOKEN_TAG_BYTES = 16
_FIELD_LENGTH = struct.Struct(">H")
_URLSAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


class UnsubscribeToken(NamedTuple):
    """What an unsubscribe link carries, readable only with the secret."""

    customer_id: str
    campaign_id: str
    email: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=8)
def _token_keys(secret: bytes) -> tuple[AESGCM, bytes]:
    """AES-256-GCM and a nonce key, both derived from the secret (HKDF), never the secret itself."""
    keys = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_TOKEN_KEY_INFO).derive(secret)
    return AESGCM(keys[:32]), keys[32:]


def _pack(fields: Sequence[str]) -> bytes:
    packed = bytearray()
    for value in fields:
        data = value.encode()
        packed += _FIELD_LENGTH.pack(len(data)) + data
    return bytes(packed)


def _unpack(data: bytes, count: int) -> list[str] | None:
    fields, position = [], 0
    for _ in range(count):
        if position + _FIELD_LENGTH.size > len(data):
            return None
        (length,) = _FIELD_LENGTH.unpack_from(data, position)
        position += _FIELD_LENGTH.size
        if position + length > len(data):
            return None
        fields.append(data[position:position + length].decode())
        position += length
    return fields if position == len(data) else None


def sign_unsubscribe_token(secret: bytes, customer_id: str, campaign_id: str, email: str) -> str:
    """An opaque, URL-safe token for one recipient's unsubscribe link: customer, campaign and address
    are encrypted and authenticated (AES-GCM), so the link reveals none of them and cannot be forged
    or altered without the secret."""
    if not secret:
        raise ValueError("the unsubscribe secret is empty; set MAILROOM_UNSUBSCRIBE_SECRET or let Mailroom create one")
    fields = (customer_id, campaign_id, email)
    for name, value in zip(("customer_id", "campaign_id", "email"), fields):
        if not isinstance(value, str) or not value:
            raise ValueError(f"an unsubscribe token needs a non-empty {name}")
        if len(value.encode()) > 0xFFFF:
            raise ValueError(f"{name} is longer than an unsubscribe token can carry (65,535 bytes)")
    cipher, nonce_key = _token_keys(secret)
    plain = _pack(fields)
    # A synthetic nonce (keyed hash of the plaintext, as in SIV): the same recipient and campaign get
    # the same link on every render, so rendering stays deterministic, and two different plaintexts
    # share a nonce only with probability 2**-96.
    nonce = hmac.digest(nonce_key, TOKEN_VERSION + plain, "sha256")[:_NONCE_BYTES]
    sealed = cipher.encrypt(nonce, plain, TOKEN_VERSION)
    return _b64(TOKEN_VERSION + nonce + sealed)


def verify_unsubscribe_token(secret: bytes, token: object) -> UnsubscribeToken | None:
    """(customer_id, campaign_id, email) of a token we issued; None for anything else: malformed,
    truncated, altered, or issued under another secret."""
    if not secret or not isinstance(token, str) or not _URLSAFE_TOKEN.fullmatch(token):
        return None
    try:
        data = _unb64(token)
    except (binascii.Error, ValueError):
        return None
    # Only the canonical spelling counts: base64 ignores a last character's spare bits, so two
    # spellings could decode to the same bytes.
    if _b64(data) != token or len(data) < 1 + _NONCE_BYTES + _TOKEN_TAG_BYTES or data[:1] != TOKEN_VERSION:
        return None
    nonce, sealed = data[1:1 + _NONCE_BYTES], data[1 + _NONCE_BYTES:]
    try:
        plain = _token_keys(secret)[0].decrypt(nonce, sealed, TOKEN_VERSION)
        fields = _unpack(plain, 3)
    except (InvalidTag, UnicodeDecodeError):
        return None
    if fields is None or not all(fields):
        return None
    return UnsubscribeToken(*fields)


@lru_cache(maxsize=8)
def _message_id_key(secret: bytes) -> bytes:
    """The Message-ID key, derived from the secret (HKDF) apart from the token keys."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MESSAGE_ID_KEY_INFO).derive(secret)


def message_id_for(secret: bytes, campaign_id: str, run_key: str, customer_id: str, domain: str) -> str:
    """The RFC 5322 Message-ID of this send: the same inputs give the same id on every retry, which
    is what lets the sender and the ESP drop duplicates (exactly-once sending).

    A keyed hash (HMAC), not a plain digest: customer ids derive from identifiers such as email
    addresses, so anyone holding a list of addresses could otherwise recompute the ids and tell from
    a provider's logs who got which campaign. Without the secret the id says nothing."""
    if not domain or _NOT_ONE_LINE.search(domain) or any(ch in domain for ch in " <>@"):
        raise ValueError(f"sender domain {domain!r} is not a bare domain name like 'mail.example.com'")
    if not secret:
        raise ValueError("the secret is empty; Message-IDs are keyed hashes and need it")
    # Length-prefixed fields: ("a|b", "c") and ("a", "b|c") must not give the same id.
    digest = hmac.new(_message_id_key(secret), _pack((campaign_id, run_key, customer_id)), hashlib.sha256)
    return f"<{digest.hexdigest()[:32]}@{domain}>"


def one_line(value: str) -> str:
    """Plain single-line text for a header: line breaks and control characters become one space."""
    return " ".join(_NOT_ONE_LINE.sub(" ", value).split())


@dataclass(frozen=True)
class RenderedMessage:
    message_id: str
    subject: str
    preheader: str
    html: str
    text: str
    headers: dict[str, str]


class MessageRenderer:
    """Renders every template pair <name>.html.j2 + <name>.txt.j2 found in templates_dir."""

    def __init__(
        self,
        templates_dir: Path,
        postal_address: str,
        company_name: str,
        unsubscribe_base_url: str,
        secret: bytes,
        sender_domain: str,
        site_url: str | None = None,
    ) -> None:
        """`site_url`, the brand's site, is where a link goes when its own URL is missing or unsafe."""
        templates_dir = Path(templates_dir)
        if not templates_dir.is_dir():
            raise FileNotFoundError(f"templates directory {templates_dir} does not exist")
        if not postal_address.strip() or not company_name.strip():
            raise ValueError("every message needs the company name and postal address in its footer (CAN-SPAM)")
        if not secret:
            raise ValueError("the unsubscribe secret is empty; set one so unsubscribe links can be verified")
        message_id_for(secret, "check", "check", "check", sender_domain)  # fail now on a bad domain, not mid-run
        if site_url is not None and safe_url(site_url) is None:
            raise ValueError(f"site URL {site_url!r} is not an http(s) link like 'https://shop.example.com/'")

        loader = FileSystemLoader(templates_dir)
        # Two sandboxes: HTML escapes every variable; text must not, or "&" would arrive as "&amp;".
        html_env = SandboxedEnvironment(loader=loader, autoescape=True, undefined=StrictUndefined)
        text_env = SandboxedEnvironment(loader=loader, autoescape=False, undefined=StrictUndefined,
                                        keep_trailing_newline=True)
        names = {path.name.removesuffix(HTML_SUFFIX) for path in templates_dir.glob(f"*{HTML_SUFFIX}")}
        names |= {path.name.removesuffix(TEXT_SUFFIX) for path in templates_dir.glob(f"*{TEXT_SUFFIX}")}
        if not names:
            raise FileNotFoundError(f"no *{HTML_SUFFIX} / *{TEXT_SUFFIX} templates in {templates_dir}")
        self._templates = {}
        for name in sorted(names):
            for suffix in (HTML_SUFFIX, TEXT_SUFFIX):
                if not (templates_dir / f"{name}{suffix}").is_file():
                    raise FileNotFoundError(
                        f"template {name!r} needs both parts: {name}{suffix} is missing from {templates_dir}"
                    )
            self._templates[name] = (html_env.get_template(name + HTML_SUFFIX),
                                     text_env.get_template(name + TEXT_SUFFIX))

        self.templates_dir = templates_dir
        self._footer = {"company_name": company_name.strip(), "postal_address": postal_address.strip()}
        self._unsubscribe_base_url = unsubscribe_base_url
        self._separator = "&" if "?" in unsubscribe_base_url else "?"
        self._secret = secret
        self._sender_domain = sender_domain
        self._site_url = safe_url(site_url)

    @property
    def template_names(self) -> list[str]:
        return sorted(self._templates)

    def render(
        self,
        *,
        template: str,
        campaign_id: str,
        run_key: str,
        customer_id: str,
        email: str,
        first_name: str | None,
        content: ContentUnit,
        products: Sequence[Mapping] = (),
        cta_url: str | None = None,
    ) -> RenderedMessage:
        try:
            html_template, text_template = self._templates[template]
        except KeyError:
            raise KeyError(
                f"no template {template!r}: expected {template}{HTML_SUFFIX} and {template}{TEXT_SUFFIX} in "
                f"{self.templates_dir}; available: {', '.join(self.template_names)}"
            ) from None

        # The address rides in the (encrypted) token: the receiver records the opt-out against it.
        token = sign_unsubscribe_token(self._secret, customer_id, campaign_id, email)
        unsubscribe_url = f"{self._unsubscribe_base_url}{self._separator}token={token}"
        message_id = message_id_for(self._secret, campaign_id, run_key, customer_id, self._sender_domain)
        subject, preheader = one_line(content.subject), one_line(content.preheader)
        product_views = [_product_view(product, position, self._site_url) for position, product in enumerate(products)]
        # The button goes to the campaign's page, else to the first product, else to the brand's site;
        # no link, no button.
        cta_href = safe_url(cta_url) or next((p["url"] for p in product_views if p["url"]), None) or self._site_url

        context = {
            "first_name": (first_name or "").strip() or FALLBACK_FIRST_NAME,
            "subject": subject,
            "preheader": preheader,
            "headline": content.headline,
            "paragraphs": content.body_paragraphs,
            "call_to_action": content.call_to_action,
            "cta_url": cta_href,
            "products": product_views,
            "unsubscribe_url": unsubscribe_url,
            **self._footer,
        }
        headers = {
            "Message-ID": message_id,
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",  # RFC 8058 one-click
            "X-Mailroom-Campaign": one_line(campaign_id),
        }
        return RenderedMessage(
            message_id=message_id,
            subject=subject,
            preheader=preheader,
            html=html_template.render(context),
            text=text_template.render(context),
            headers=headers,
        )


def safe_url(url: object) -> str | None:
    """The URL if it is a web link fit for an href, else None: autoescaping does not stop a
    "javascript:" URL. Only http(s) with a host, no user name or password in it (a
    "https://shop.example.com@evil.example" link goes to evil.example), no whitespace or control
    characters, at most MAX_URL_LENGTH characters. Surrounding spaces (CSV exports) are dropped."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH or _NOT_IN_URL.search(url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return url


def _product_view(product: Mapping, position: int, fallback_url: str | None = None) -> dict:
    """The fields a template may show, with the price formatted once here rather than in templates."""
    try:
        name, category, price, currency = (product[key] for key in ("name", "category", "price", "currency"))
        product_id = product["product_id"]
    except KeyError as missing:
        raise KeyError(
            f"product #{position} ({dict(product)!r}) has no {missing}; every product needs "
            "product_id, name, category, price and currency"
        ) from None
    amount = f"{float(price):,.2f}"
    symbol = _CURRENCY_SYMBOLS.get(str(currency).upper())
    return {
        "product_id": str(product_id),
        "name": str(name),
        "category": str(category),
        "price": f"{symbol}{amount}" if symbol else f"{amount} {currency}",
        "url": safe_url(product.get("url")) or fallback_url,
    }
