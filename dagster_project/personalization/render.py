"""Turn one content unit plus one customer's merge fields into a sendable message (HTML + text).

Templates are compiled once per renderer, in a sandbox; customer data and LLM-written words reach
them only as variables, never as template source, so "{{ 7*7 }}" in a name stays text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from dagster_project.personalization.content import ContentUnit

HTML_SUFFIX = ".html.j2"
TEXT_SUFFIX = ".txt.j2"
FALLBACK_FIRST_NAME = "there"  # "Hi there,"

# Control characters and Unicode line/paragraph separators: none may reach a header line.
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_unsubscribe_token(secret: bytes, customer_id: str, campaign_id: str) -> str:
    """A token that proves we issued this unsubscribe link for this customer and campaign."""
    if "|" in customer_id:
        # The payload is split at the first "|", so a "|" in the id would make tokens ambiguous.
        raise ValueError(f"customer_id {customer_id!r} contains '|', which unsubscribe tokens reserve")
    payload = f"{customer_id}|{campaign_id}".encode()
    return f"{_b64(payload)}.{_b64(hmac.digest(secret, payload, 'sha256'))}"


def verify_unsubscribe_token(secret: bytes, token: str) -> tuple[str, str] | None:
    """(customer_id, campaign_id) for a token we signed; None when it is malformed or tampered with."""
    if not isinstance(token, str) or not token.isascii() or token.count(".") != 1:
        return None
    try:
        payload = _unb64(token.partition(".")[0]).decode()
    except (binascii.Error, ValueError):  # bad base64 or bad UTF-8
        return None
    customer_id, sep, campaign_id = payload.partition("|")
    if not sep or not customer_id:
        return None
    # Re-sign and compare whole tokens: base64 ignores a last character's spare bits, so comparing
    # decoded bytes would accept altered spellings of a valid token.
    expected = sign_unsubscribe_token(secret, customer_id, campaign_id)
    return (customer_id, campaign_id) if hmac.compare_digest(expected, token) else None


def message_id_for(campaign_id: str, run_key: str, customer_id: str, domain: str) -> str:
    """The RFC 5322 Message-ID of this send: the same inputs give the same id on every retry, which
    is what lets the sender and the ESP drop duplicates (exactly-once sending)."""
    if not domain or _NOT_ONE_LINE.search(domain) or any(ch in domain for ch in " <>@"):
        raise ValueError(f"sender domain {domain!r} is not a bare domain name like 'mail.example.com'")
    digest = hashlib.sha256(f"{campaign_id}|{run_key}|{customer_id}".encode()).hexdigest()
    return f"<{digest[:32]}@{domain}>"


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
    ) -> None:
        templates_dir = Path(templates_dir)
        if not templates_dir.is_dir():
            raise FileNotFoundError(f"templates directory {templates_dir} does not exist")
        if not postal_address.strip() or not company_name.strip():
            raise ValueError("every message needs the company name and postal address in its footer (CAN-SPAM)")
        if not secret:
            raise ValueError("the unsubscribe secret is empty; set one so unsubscribe links can be verified")
        message_id_for("check", "check", "check", sender_domain)  # fail now on a bad domain, not mid-run

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

        token = sign_unsubscribe_token(self._secret, customer_id, campaign_id)
        unsubscribe_url = f"{self._unsubscribe_base_url}{self._separator}token={token}"
        message_id = message_id_for(campaign_id, run_key, customer_id, self._sender_domain)
        subject, preheader = one_line(content.subject), one_line(content.preheader)
        product_views = [_product_view(product, position) for position, product in enumerate(products)]
        # The button goes to the campaign's page, else to the first product; no link, no button.
        cta_href = _safe_url(cta_url) or next((p["url"] for p in product_views if p["url"]), None)

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


def _safe_url(url: object) -> str | None:
    """Only web links go into an href: autoescaping does not stop a "javascript:" URL."""
    if isinstance(url, str) and url.startswith(("https://", "http://")) and not _NOT_ONE_LINE.search(url):
        return url
    return None


def _product_view(product: Mapping, position: int) -> dict:
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
        "url": _safe_url(product.get("url")),
    }
