"""Message rendering (dagster_project/personalization/render.py) with the real templates in
content/templates: merge fields stay text, every message can be unsubscribed from and carries the
footer, unsubscribe tokens are opaque and resist tampering, Message-IDs are deterministic and headers
stay single lines."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError, UndefinedError
from markupsafe import escape

from dagster_project.personalization.content import ContentUnit
from dagster_project.personalization.render import (
    MessageRenderer,
    RenderedMessage,
    UnsubscribeToken,
    message_id_for,
    sign_unsubscribe_token,
    verify_unsubscribe_token,
)

TEMPLATES_DIR = Path(__file__).parents[1] / "content" / "templates"
TEMPLATES = ("picks_for_you", "cart_reminder", "journey_message")
SECRET = b"test-secret-0123456789abcdef"
ADDRESS = "100 Harbor Way, Suite 5, Portland, OR 97201, USA"
COMPANY = "Acme & Co"
UNSUBSCRIBE = "https://mail.example.com/unsubscribe"
DOMAIN = "mail.example.com"

PRODUCTS = [
    {"product_id": "p-1", "name": "Trail Runner 2", "category": "footwear", "price": 129.5, "currency": "USD",
     "url": "https://shop.example.com/p-1"},
    {"product_id": "p-2", "name": "Wool Beanie", "category": "accessories", "price": "24", "currency": "NOK"},
]


def make_renderer(templates_dir: Path = TEMPLATES_DIR, base_url: str = UNSUBSCRIBE,
                  site_url: str | None = None) -> MessageRenderer:
    return MessageRenderer(templates_dir, postal_address=ADDRESS, company_name=COMPANY,
                           unsubscribe_base_url=base_url, secret=SECRET, sender_domain=DOMAIN, site_url=site_url)


@pytest.fixture(scope="module")
def renderer() -> MessageRenderer:
    return make_renderer()


def unit(**overrides) -> ContentUnit:
    fields = {
        "subject": "Your picks this week",
        "preheader": "Chosen from what you love",
        "headline": "Fresh finds for you",
        "body_paragraphs": ["New arrivals in your favourite categories.", "Free returns, as always."],
        "call_to_action": "See your picks",
    }
    return ContentUnit(**{**fields, **overrides})


def render(renderer: MessageRenderer, **overrides) -> RenderedMessage:
    arguments = {"template": "picks_for_you", "campaign_id": "weekly-2026-45", "run_key": "run-1",
                 "customer_id": "cus_00ab", "email": "ada@example.com", "first_name": "Ada", "content": unit(),
                 "products": PRODUCTS}
    return renderer.render(**{**arguments, **overrides})


def test_the_real_templates_all_load(renderer):
    assert renderer.template_names == sorted(TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES)
def test_message_has_content_products_and_greeting(renderer, template):
    message = render(renderer, template=template)
    for part in (message.html, message.text):
        assert "Hi Ada," in part
        assert "Fresh finds for you" in part
        assert "Free returns, as always." in part
        assert "See your picks" in part
        assert "Trail Runner 2" in part and "$129.50" in part
        assert "Wool Beanie" in part and "24.00 NOK" in part
    assert 'href="https://shop.example.com/p-1"' in message.html
    assert "Chosen from what you love" in message.html  # the hidden preheader span
    assert (message.subject, message.preheader) == ("Your picks this week", "Chosen from what you love")


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_message_carries_unsubscribe_and_footer(renderer, template):
    message = render(renderer, template=template, customer_id="cus_77", campaign_id="cart-abandon",
                     email="sam@example.org")
    url = message.headers["List-Unsubscribe"].removeprefix("<").removesuffix(">")
    assert url.startswith(f"{UNSUBSCRIBE}?token=")
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.headers["Message-ID"] == message.message_id
    assert message.headers["X-Mailroom-Campaign"] == "cart-abandon"
    assert set(message.headers) == {"List-Unsubscribe", "List-Unsubscribe-Post", "Message-ID", "X-Mailroom-Campaign"}
    assert f'href="{url}"' in message.html and url in message.text
    assert ADDRESS in message.html and ADDRESS in message.text
    # The same name, escaped in HTML and literal in text: each part has its own environment.
    assert "Acme &amp; Co" in message.html and "Acme & Co" in message.text and "&amp;" not in message.text
    assert verify_unsubscribe_token(SECRET, url.split("token=")[1]) == ("cus_77", "cart-abandon", "sam@example.org")


INJECTIONS = [
    "{{ 7*7 }}",
    "{% for x in range(10) %}x{% endfor %}",
    "<script>alert(1)</script>",
    "{{ ''.__class__.__mro__ }}",
    "\"><img src=x onerror=alert('x')>",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_merge_fields_render_as_text_never_as_code(renderer, payload):
    message = render(renderer, first_name=payload, content=unit(body_paragraphs=[payload]),
                     products=[{**PRODUCTS[1], "name": payload}])
    assert f"Hi {payload}," in message.text
    assert message.text.count(payload) == 3  # greeting, paragraph, product: all literal
    assert f"Hi {escape(payload)}," in message.html
    assert message.html.count(str(escape(payload))) == 3
    assert "<script>" not in message.html and "<img src=x" not in message.html
    assert "49" not in message.text and "xxxxxxxxxx" not in message.text


def test_only_web_links_become_hrefs(renderer):
    products = [{**PRODUCTS[0], "url": "javascript:alert(1)"}]
    message = render(renderer, products=products)
    assert "javascript:" not in message.html and "javascript:" not in message.text
    assert "Trail Runner 2" in message.html


def test_cta_links_to_the_given_url_or_the_first_product(renderer):
    assert 'href="https://shop.example.com/p-1"' in render(renderer).html
    linked = render(renderer, cta_url="https://shop.example.com/picks?week=45")
    assert 'href="https://shop.example.com/picks?week=45"' in linked.html
    assert "See your picks: https://shop.example.com/picks?week=45" in linked.text
    unlinked = render(renderer, products=[])
    assert "See your picks" in unlinked.html and "shop.example.com" not in unlinked.html


SITE = "https://shop.example.com/"
PRODUCTS_HEADINGS = {"picks_for_you": "This week's picks", "cart_reminder": "Still in your cart",
                     "journey_message": "Picked for you"}


def _headings(message: RenderedMessage) -> tuple[list[str], list[str]]:
    """The headings of the HTML part (h1, h2; as escaped there) and the lines of the text part, lower case."""
    html = [h.strip().lower() for h in re.findall(r"<h[12][^>]*>(.*?)</h[12]>", message.html)]
    text = [line.rstrip(":").strip().lower() for line in message.text.splitlines()]
    return html, text


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("headline", ["Picked for you this week", "This week's picks", "  STILL IN YOUR CART ",
                                      "Still thinking it over?"])
def test_the_products_heading_never_repeats_the_headline(renderer, template, headline):
    message = render(renderer, template=template, content=unit(headline=headline))
    html, text = _headings(message)
    assert len(html) == len(set(html)), html
    expected = headline.strip().lower()
    assert text.count(expected) == 1 and html.count(str(escape(expected))) == 1
    heading = PRODUCTS_HEADINGS[template].lower()
    assert text.count(heading) == html.count(str(escape(heading))) == 1  # once, from one side or the other


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_product_and_the_button_are_links_to_the_shop(template):
    renderer = make_renderer(site_url=SITE)
    products = [{**PRODUCTS[0], "url": f"https://shop.example.com/p/{n}"} for n in range(3)]
    message = render(renderer, template=template, products=products)
    links = re.findall(r'<a href="([^"]+)"', message.html)
    assert links[:4] == [*(p["url"] for p in products), products[0]["url"]]  # each product, then the button
    for product in products:
        assert product["url"] in message.text
    assert f"See your picks: {products[0]['url']}" in message.text


HOSTILE_URLS = ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,<script>alert(1)</script>",
                "https://shop.example.com@evil.example/", "//evil.example/p", "https://", "https://[::1",
                "https://shop.example.com:99999/", "https://shop.example.com/a b", "https://shop\n.example.com/",
                "x" * 3000, "", None, 42, ["https://shop.example.com/"]]


@pytest.mark.parametrize("url", HOSTILE_URLS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_a_bad_product_url_falls_back_to_the_brand_site(template, url):
    message = render(make_renderer(site_url=SITE), template=template, products=[{**PRODUCTS[0], "url": url}])
    links = re.findall(r'<a href="([^"]+)"', message.html)
    assert links[:2] == [SITE, SITE]  # the product, then the button
    assert "evil.example" not in message.html and "javascript" not in message.html.lower()
    assert "Trail Runner 2" in message.html and "Trail Runner 2" in message.text
    # Without a site to fall back on, the product is still shown, just not linked.
    unlinked = render(make_renderer(), template=template, products=[{**PRODUCTS[0], "url": url}])
    assert "<strong>Trail Runner 2</strong>" in unlinked.html and "shop.example.com" not in unlinked.html


def test_a_url_is_escaped_inside_the_href(renderer):
    url = 'https://shop.example.com/p/1?q="><script>alert(1)</script>'
    message = render(renderer, products=[{**PRODUCTS[0], "url": url}])
    assert f'href="{escape(url)}"' in message.html and "<script>" not in message.html
    assert url in message.text  # the text part is not HTML


def test_no_products_and_no_campaign_page_link_the_button_to_the_brand_site():
    message = render(make_renderer(site_url=SITE), products=[])
    assert f'href="{SITE}"' in message.html and f"See your picks: {SITE}" in message.text


@pytest.mark.parametrize("site_url", ["javascript:alert(1)", "shop.example.com", "https://"])
def test_a_site_url_that_is_not_a_web_link_fails_at_construction(site_url):
    with pytest.raises(ValueError, match="site URL"):
        make_renderer(site_url=site_url)


@pytest.mark.parametrize("first_name", [None, "", "   "])
def test_missing_first_name_falls_back_to_there(renderer, first_name):
    message = render(renderer, first_name=first_name)
    assert "Hi there," in message.html and "Hi there," in message.text


def test_header_injection_cannot_add_a_header_line(renderer):
    message = render(renderer, campaign_id="weekly\r\nBcc: a@b.c",
                     content=unit(subject="Your picks\r\nBcc: x@y.z", preheader="Hi\nBcc: x@y.z\u2028X: 1"))
    assert message.subject == "Your picks Bcc: x@y.z"
    assert message.preheader == "Hi Bcc: x@y.z X: 1"
    for value in [message.subject, message.preheader, *message.headers.values()]:
        assert not re.search(r"[\r\n\u2028\u2029]", value)
    # What the sender would build: the only headers are the ones we set.
    email = EmailMessage()
    email["Subject"] = message.subject
    for name, value in message.headers.items():
        email[name] = value
    email.set_content(message.text)
    parsed = message_from_bytes(email.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Your picks Bcc: x@y.z"


MD5_ID = "5f4dcc3b5aa765d61d8327deb882cf99"  # customer ids may be an md5 of an email


@pytest.mark.parametrize("email", ["ada@example.com", "adam@example.com", "adams@example.com"])
def test_unsubscribe_token_round_trips_and_resists_tampering(email):
    token = sign_unsubscribe_token(SECRET, "cus_00ab", "weekly-2026-45", email)
    opened = verify_unsubscribe_token(SECRET, token)
    assert opened == UnsubscribeToken("cus_00ab", "weekly-2026-45", email)
    assert (opened.customer_id, opened.campaign_id, opened.email) == ("cus_00ab", "weekly-2026-45", email)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)  # URL-safe, no padding
    # Every other character at every position, including the last one, whose spare bits base64
    # ignores (the three addresses give the three token lengths modulo 3).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
    for position, char in enumerate(token):
        for replacement in alphabet.replace(char, ""):
            tampered = token[:position] + replacement + token[position + 1:]
            assert verify_unsubscribe_token(SECRET, tampered) is None, f"accepted {tampered!r}"
    assert verify_unsubscribe_token(b"another-secret", token) is None


def test_truncated_or_extended_tokens_are_rejected():
    token = sign_unsubscribe_token(SECRET, "cus_1", "weekly", "a@example.com")
    for cut in range(len(token)):
        assert verify_unsubscribe_token(SECRET, token[:cut]) is None
    for suffix in ("A", "AA", "AAAA", "="):
        assert verify_unsubscribe_token(SECRET, token + suffix) is None


def test_a_token_reveals_neither_the_customer_nor_the_address():
    email = "jane.doe@example.com"
    token = sign_unsubscribe_token(SECRET, MD5_ID, "weekly-2026-45", email)
    readable = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for secret_value in (MD5_ID, email, "jane.doe", "example.com", "weekly-2026-45"):
        assert secret_value not in token and secret_value.encode() not in readable
        for shift in range(3):  # base64 of the value at each of the three byte alignments
            encoded = base64.urlsafe_b64encode(b"\0" * shift + secret_value.encode()).decode().rstrip("=")
            assert encoded[4:-2] not in token
    assert len(token) < 200


def test_tokens_differ_per_recipient_and_are_stable_per_recipient():
    tokens = {sign_unsubscribe_token(SECRET, f"cus_{n}", "weekly", f"p{n}@example.com") for n in range(200)}
    assert len(tokens) == 200
    assert sign_unsubscribe_token(SECRET, "cus_1", "w", "a@example.com") == sign_unsubscribe_token(
        SECRET, "cus_1", "w", "a@example.com")
    assert sign_unsubscribe_token(SECRET, "cus_1", "w", "a@example.com") != sign_unsubscribe_token(
        SECRET, "cus_1", "w", "b@example.com")


def test_a_token_for_one_customer_cannot_be_rewritten_for_another():
    token = sign_unsubscribe_token(SECRET, "cus_1", "weekly", "one@example.com")
    other = sign_unsubscribe_token(SECRET, "cus_2", "weekly", "two@example.com")
    mine, theirs = (base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)) for t in (token, other))
    # Header and nonce of one token with the sealed payload of the other, and vice versa.
    for spliced in (mine[:13] + theirs[13:], theirs[:13] + mine[13:]):
        candidate = base64.urlsafe_b64encode(spliced).decode().rstrip("=")
        assert verify_unsubscribe_token(SECRET, candidate) is None
    forged = sign_unsubscribe_token(b"attacker", "cus_2", "weekly", "attacker@example.com")
    assert verify_unsubscribe_token(SECRET, forged) is None


@pytest.mark.parametrize("token", ["", ".", "abc", "a.b.c", "!!!.###", "Y3VzXzE.é", "bm9waXBl.AAAA",
                                   "A" * 40, "AQ" + "A" * 60, None, 12345])
def test_malformed_tokens_are_rejected(token):
    assert verify_unsubscribe_token(SECRET, token) is None


@pytest.mark.parametrize("customer_id", ["cus_1|x", "ünïcödé", "a" * 300, "with\nnewline", "x.y=z&w"])
def test_any_customer_id_round_trips(customer_id):
    token = sign_unsubscribe_token(SECRET, customer_id, "weekly|b", "o'neil+tag@example.com")
    assert verify_unsubscribe_token(SECRET, token) == (customer_id, "weekly|b", "o'neil+tag@example.com")


@pytest.mark.parametrize("fields", [("", "weekly", "a@b.co"), ("cus_1", "", "a@b.co"), ("cus_1", "weekly", ""),
                                    ("cus_1", "weekly", None)])
def test_tokens_need_every_field(fields):
    with pytest.raises(ValueError, match="non-empty"):
        sign_unsubscribe_token(SECRET, *fields)
    with pytest.raises(ValueError, match="secret is empty"):
        sign_unsubscribe_token(b"", "cus_1", "weekly", "a@b.co")


def test_message_id_is_deterministic_and_unique_per_send():
    message_id = message_id_for(SECRET, "weekly", "run-1", "cus_1", DOMAIN)
    assert re.fullmatch(r"<[0-9a-f]{32}@mail\.example\.com>", message_id)
    assert message_id_for(SECRET, "weekly", "run-1", "cus_1", DOMAIN) == message_id
    others = {message_id_for(SECRET, "weekly", "run-1", "cus_2", DOMAIN),
              message_id_for(SECRET, "weekly", "run-2", "cus_1", DOMAIN),
              message_id_for(SECRET, "weekly-b", "run-1", "cus_1", DOMAIN),
              message_id_for(SECRET, "weekly|run-1", "", "cus_1", DOMAIN),  # no ambiguity between fields
              message_id_for(SECRET, "weekly", "run-1|cus_1", "", DOMAIN)}
    assert message_id not in others and len(others) == 5
    with pytest.raises(ValueError, match="not a bare domain"):
        message_id_for(SECRET, "weekly", "run-1", "cus_1", "mail.example.com>\r\nBcc: x@y.z")
    with pytest.raises(ValueError, match="secret is empty"):
        message_id_for(b"", "weekly", "run-1", "cus_1", DOMAIN)


def test_message_id_cannot_be_recomputed_from_a_list_of_addresses_without_the_secret():
    """Customer ids derive from identifiers such as emails (md5 of the address, say): someone holding a
    list of addresses can compute every candidate id, and must still not be able to tell which
    Message-ID in a provider's log belongs to whom."""
    email = "jane.doe@example.com"
    customer_id = hashlib.md5(email.encode()).hexdigest()
    message_id = message_id_for(SECRET, "weekly-2026-45", "run-1", customer_id, DOMAIN)
    local = message_id[1:33]
    guesses = {hashlib.sha256(text.encode()).hexdigest()[:32]
               for text in (f"weekly-2026-45|run-1|{customer_id}", f"weekly-2026-45|run-1|{email}", customer_id, email)}
    assert local not in guesses
    assert message_id_for(b"another-secret-0123456789abcdef0", "weekly-2026-45", "run-1", customer_id,
                          DOMAIN) != message_id
    rendered = render(make_renderer(), customer_id=customer_id)
    assert rendered.message_id == message_id_for(SECRET, "weekly-2026-45", "run-1", customer_id, DOMAIN)
    assert customer_id not in str(rendered.headers) and email not in rendered.message_id


_ID_PART = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ID_PART, _ID_PART, _ID_PART), min_size=2, max_size=20, unique=True))
def test_message_ids_are_opaque_and_distinct_for_any_ids(sends):
    """Whatever the campaign, run and customer ids hold (separators, line breaks, any script), the id
    is 32 hex characters at the domain, and different sends never share one."""
    ids = [message_id_for(SECRET, *send, DOMAIN) for send in sends]
    assert all(re.fullmatch(r"<[0-9a-f]{32}@mail\.example\.com>", message_id) for message_id in ids)
    assert len(set(ids)) == len(sends)


def test_rendering_is_deterministic(renderer):
    assert render(renderer) == render(renderer)


def test_an_unknown_template_names_the_files_and_directory(renderer):
    with pytest.raises(KeyError) as raised:
        render(renderer, template="winback")
    assert "winback.html.j2" in str(raised.value) and str(TEMPLATES_DIR) in str(raised.value)
    assert "picks_for_you" in str(raised.value)  # and what is available


def test_a_template_missing_its_text_part_fails_at_construction(tmp_path):
    (tmp_path / "promo.html.j2").write_text("<p>{{ headline }}</p>")
    with pytest.raises(FileNotFoundError) as raised:
        make_renderer(tmp_path)
    assert "promo.txt.j2" in str(raised.value) and str(tmp_path) in str(raised.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_renderer(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no \\*.html.j2"):
        make_renderer(empty)


def test_templates_are_compiled_once_at_construction(tmp_path):
    for path in TEMPLATES_DIR.glob("*.j2"):
        shutil.copy(path, tmp_path / path.name)
    renderer = make_renderer(tmp_path)
    before = render(renderer)
    (tmp_path / "picks_for_you.html.j2").write_text("changed")
    assert render(renderer) == before


def test_templates_run_in_a_sandbox_with_strict_variables(tmp_path):
    (tmp_path / "escape.html.j2").write_text("{{ first_name.__class__.__mro__[1].__subclasses__() }}")
    (tmp_path / "escape.txt.j2").write_text("")
    (tmp_path / "typo.html.j2").write_text("{{ frist_name }}")
    (tmp_path / "typo.txt.j2").write_text("")
    renderer = make_renderer(tmp_path)
    with pytest.raises(SecurityError):
        render(renderer, template="escape")
    with pytest.raises(UndefinedError, match="frist_name"):
        render(renderer, template="typo")


def test_an_unsubscribe_url_with_a_query_gets_the_token_appended():
    message = render(make_renderer(base_url="https://mail.example.com/u?list=weekly"))
    assert message.headers["List-Unsubscribe"].startswith("<https://mail.example.com/u?list=weekly&token=")


def test_two_thousand_messages_are_all_correct(renderer):
    messages = [render(renderer, template=TEMPLATES[i % 2], customer_id=f"cus_{i:08x}",
                       first_name=None if i % 7 == 0 else f"Name{i}") for i in range(2000)]
    assert len({m.message_id for m in messages}) == 2000
    for i, message in enumerate(messages):
        token = message.headers["List-Unsubscribe"].split("token=")[1].rstrip(">")
        assert verify_unsubscribe_token(SECRET, token) == (f"cus_{i:08x}", "weekly-2026-45", "ada@example.com")
        greeting = "Hi there," if i % 7 == 0 else f"Hi Name{i},"
        assert greeting in message.html and greeting in message.text
        assert ADDRESS in message.html and ADDRESS in message.text
        assert "Wool Beanie" in message.html and "Wool Beanie" in message.text
