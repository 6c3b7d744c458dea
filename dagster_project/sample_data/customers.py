"""Latent customers: who each synthetic person really is (country, timezone, identities, devices) and
the hidden traits that drive their behaviour (favourite categories, preferred hour, responsiveness,
cart abandonment). truth/customers.csv writes these out so later models can be checked against them."""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field

from dagster_project.sample_data import phones, world
from dagster_project.sample_data.clock import DAY_MS, Window
from dagster_project.sample_data.ids import Ids
from dagster_project.sample_data.phones import Phone

# Share of customers with each property; the README documents them.
CRM_CONTACT_SHARE = 0.70
CRM_USER_ID_KNOWN_SHARE = 0.80  # of contacts; the rest must be joined on email or phone
SECOND_EMAIL_SHARE = 0.12  # of contacts: the CRM holds a work email the CDP never saw
PHONE_SHARE = 0.65
CART_ABANDONER_SHARE = 0.12
MESSY_EMAIL_SHARE = 0.25  # types '  Jane.Doe@Example.COM ' into some forms
PLACEHOLDER_EMAIL_SHARE = 0.015
SHARED_DEVICE_SHARE = 0.035
ALIAS_SHARE = 0.10
APPLE_MAIL_SHARE_APPLE_DEVICE = 0.55
APPLE_MAIL_SHARE_OTHER = 0.08

# Cycled in this order, so test@test.com is always shared by different people; until three customers
# have used one, placeholders are much more likely (even a tiny sample shows the problem).
PLACEHOLDER_EMAILS = ("test@test.com", "null", "test@test.com", "none@none.com", "test@test.com",
                      "noemail@example.com")
PLACEHOLDER_EARLY_SHARE = 0.08

USER_AGENTS = {
    "mobile": (
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/17.4 Mobile/15E148 Safari/604.1", True),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Mobile Safari/537.36", False),
        ("Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/123.0.0.0 Mobile Safari/537.36", False),
    ),
    "desktop": (
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Safari/537.36", False),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/17.4 Safari/605.1.15", True),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", False),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51", False),
    ),
    "tablet": (
        ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/17.4 Mobile/15E148 Safari/604.1", True),
        ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Safari/537.36", False),
    ),
}
LIBRARY = {"name": "analytics.js", "version": "next-1.70.0"}

_context_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(slots=True)
class Device:
    anonymous_id: str
    kind: str  # mobile, desktop, tablet (Segment context.device.type)
    timezone: str
    context_json: str  # the Segment context object, serialized once per device
    is_apple: bool
    ip: str
    user_agent: str
    shared: bool = False


@dataclass(slots=True)
class Customer:
    index: int  # 1-based position in the population; also makes emails and phones unique
    key: str
    user_id: str
    country: world.Country
    region: world.Region
    timezone: str
    locale: str
    first_name: str
    last_name: str
    email: str  # normalized primary email
    email_as_typed: str  # the same address as this person types it (case, spaces)
    crm_email: str  # the email in the CRM: the primary or a second (work) address
    phone: Phone | None
    second_phone: Phone | None
    address: str
    zip: str
    category_order: tuple[str, ...]  # every category, most liked first
    category_cumulative: tuple[float, ...]
    preferred_hour: int  # local hour when this person reads email and shops most
    responsiveness: float  # 0-1, scales opens and clicks
    sessions_extra_mean: float
    first_seen_ms: int
    devices: list[Device]
    alias_device: int | None  # a device linked by an alias event instead of an identify
    has_crm_contact: bool
    crm_user_id_known: bool
    is_cart_abandoner: bool
    messy_email: bool
    placeholder_email: str | None
    uses_apple_mail: bool
    facts: dict = field(default_factory=dict)  # filled in by the event generators (orders, consent, ...)

    @property
    def favourite_categories(self) -> tuple[str, ...]:
        return self.category_order[:3]

    def draw_category(self, rng) -> str:
        return self.category_order[bisect.bisect(self.category_cumulative, rng.random())]


class SharedDevices:
    """A few family or office computers: one anonymousId that 2-5 customers of one country log in on.
    Customers arrive one at a time, so each country keeps one open device until it is full."""

    def __init__(self, rng):
        self.rng = rng
        self._open: dict[str, list] = {}  # country -> [device, seats left]
        self.devices_created = 0

    def take(self, country: str, make_device) -> Device:
        slot = self._open.get(country)
        if slot is None or slot[1] == 0:
            device = make_device()
            device.shared = True
            slot = self._open[country] = [device, self.rng.randint(2, 5)]
            self.devices_created += 1
        slot[1] -= 1
        return slot[0]


class Population:
    """Draws customers one by one from a single seeded stream."""

    def __init__(self, rng, ids: Ids, window: Window):
        self.rng = rng
        self.ids = ids
        self.window = window
        self.shared = SharedDevices(rng)
        self.placeholders_used = 0

    # -- pieces --------------------------------------------------------------------------------

    def _email_local(self, first: str, last: str, index: int) -> str:
        # The index suffix keeps every address unique (names end in a letter, so the trailing digits
        # are exactly the index) without a set of all addresses in memory.
        given, family = world.ascii_fold(first).lower(), world.ascii_fold(last).lower()
        style = self.rng.random()
        if style < 0.35:
            local = f"{given}.{family}"
        elif style < 0.55:
            local = f"{given}{family}"
        elif style < 0.70:
            local = f"{given[0]}{family}"
        elif style < 0.82:
            local = f"{given}_{family}"
        elif style < 0.92:
            local = f"{family}.{given}"
        else:
            local = given
        return f"{local}{index}"

    def _as_typed(self, local: str, domain: str) -> str:
        """'jane.doe12@example.com' -> '  Jane.Doe12@Example.COM ' (still the same address)."""
        rng = self.rng
        local = ".".join(part.capitalize() for part in local.split("."))
        domain = domain.upper() if rng.random() < 0.5 else domain.capitalize()
        return f"{' ' * rng.randint(0, 2)}{local}@{domain}{' ' * rng.randint(1, 2)}"

    def _zip(self, shape: str) -> str:
        rng = self.rng
        return "".join(
            str(rng.randint(0, 9)) if ch == "#" else chr(rng.randint(65, 90)) if ch == "A" else ch for ch in shape
        )

    def _categories(self) -> tuple[tuple[str, ...], tuple[float, ...]]:
        # A Dirichlet(0.45) draw: most people care about two or three categories. A small floor keeps
        # every category possible (people browse).
        rng = self.rng
        raw = [rng.gammavariate(0.45, 1.0) for _ in world.CATEGORY_SLUGS]
        total = sum(raw) or 1.0
        weights = [0.9 * w / total + 0.1 / len(raw) for w in raw]
        ranked = sorted(zip(weights, world.CATEGORY_SLUGS), key=lambda pair: (-pair[0], pair[1]))
        cumulative, running = [], 0.0
        for weight, _ in ranked:
            running += weight
            cumulative.append(running)
        cumulative[-1] = 1.0
        return tuple(slug for _, slug in ranked), tuple(cumulative)

    def _preferred_hour(self) -> int:
        rng = self.rng
        peak = rng.random()
        if peak < 0.25:
            hour = rng.gauss(7.5, 1.0)  # before work
        elif peak < 0.45:
            hour = rng.gauss(12.5, 0.8)  # lunch break
        elif peak < 0.90:
            hour = rng.gauss(20.0, 1.3)  # evening
        else:
            hour = rng.gauss(23.0, 1.0)  # night owls
        return int(round(hour)) % 24

    def _device(self, kind: str, tz: str, locale: str) -> Device:
        rng = self.rng
        agent, is_apple = rng.choice(USER_AGENTS[kind])
        ip = f"{rng.choice((24, 31, 46, 62, 73, 81, 88, 92, 98, 104, 142, 174, 185, 203))}." \
             f"{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        context = {"device": {"type": kind}, "timezone": tz, "ip": ip, "userAgent": agent, "locale": locale,
                   "library": LIBRARY}
        return Device(self.ids.uuid(), kind, tz, _context_json(context), is_apple, ip, agent)

    def _placeholder(self) -> str | None:
        share = PLACEHOLDER_EARLY_SHARE if self.placeholders_used < 3 else PLACEHOLDER_EMAIL_SHARE
        if self.rng.random() >= share:
            return None
        self.placeholders_used += 1
        return PLACEHOLDER_EMAILS[(self.placeholders_used - 1) % len(PLACEHOLDER_EMAILS)]

    # -- a customer ----------------------------------------------------------------------------

    def make(self, index: int) -> Customer:
        rng, window = self.rng, self.window
        country = world.COUNTRY_DRAW.draw(rng)
        region = world.REGION_DRAW[country.code].draw(rng)
        locale = region.locale or country.locale
        names = world.NAMES["fr" if locale.startswith("fr") and rng.random() < 0.7 else country.names]
        first, last = rng.choice(names[0]), rng.choice(names[1])

        local = self._email_local(first, last, index)
        domain = world.DOMAIN_DRAW[country.code].draw(rng)
        email = f"{local}@{domain}"
        messy = rng.random() < MESSY_EMAIL_SHARE
        has_crm = rng.random() < CRM_CONTACT_SHARE
        crm_email = email
        if has_crm and rng.random() < SECOND_EMAIL_SHARE:
            given, family = world.ascii_fold(first).lower(), world.ascii_fold(last).lower()
            crm_email = f"{given[0]}.{family}{index}@{rng.choice(world.WORK_DOMAINS)}"

        phone = None
        if rng.random() < PHONE_SHARE:
            mobile = phones.mobile(country, index, rng) if rng.random() < 0.6 else None
            phone = mobile or phones.landline(country, region, index, rng)
        second_phone = phones.mobile(country, index + phones.SECOND_NUMBER_OFFSET, rng) if rng.random() < 0.25 else None

        street = rng.choice(country.street_names)
        number = rng.randint(1, 240)
        address = f"{number} {street}" if country.street_number_first else f"{street} {number}"

        order, cumulative = self._categories()

        n_devices = 1 if rng.random() < 0.6 else 2 if rng.random() < 0.75 else 3
        kinds = ["mobile" if rng.random() < 0.55 else "desktop"]
        for _ in range(n_devices - 1):
            kinds.append(rng.choice(("mobile", "desktop", "tablet")))
        devices = [self._device(kind, region.timezone, locale) for kind in kinds]
        if rng.random() < SHARED_DEVICE_SHARE:
            # The family computer replaces the last device; its timezone is its first user's.
            devices[-1] = self.shared.take(country.code, lambda: self._device("desktop", region.timezone, locale))
        alias_device = rng.randrange(n_devices) if rng.random() < ALIAS_SHARE else None
        if alias_device is not None and devices[alias_device].shared:
            alias_device = None  # a shared device is identified at every login instead

        # Older customers are more common than brand-new ones; everybody has at least a day left.
        first_seen_ms = window.start_ms + int(rng.random() ** 1.3 * (window.days - 1) * DAY_MS)
        first_seen_ms = min(first_seen_ms, window.end_ms - DAY_MS)

        apple = any(device.is_apple for device in devices)
        uses_apple_mail = rng.random() < (APPLE_MAIL_SHARE_APPLE_DEVICE if apple else APPLE_MAIL_SHARE_OTHER)

        return Customer(
            index=index,
            key=f"C{index:07d}",
            user_id=f"usr_{self.ids.hex(12)}",
            country=country,
            region=region,
            timezone=region.timezone,
            locale=locale,
            first_name=first,
            last_name=last,
            email=email,
            email_as_typed=self._as_typed(local, domain) if messy else email,
            crm_email=crm_email,
            phone=phone,
            second_phone=second_phone,
            address=address,
            zip=self._zip(region.zip_shape),
            category_order=order,
            category_cumulative=cumulative,
            preferred_hour=self._preferred_hour(),
            responsiveness=round(rng.betavariate(1.6, 3.2), 3),
            sessions_extra_mean=rng.lognormvariate(0.0, 0.7),
            first_seen_ms=first_seen_ms,
            devices=devices,
            alias_device=alias_device,
            has_crm_contact=has_crm,
            crm_user_id_known=has_crm and rng.random() < CRM_USER_ID_KNOWN_SHARE,
            is_cart_abandoner=rng.random() < CART_ABANDONER_SHARE,
            messy_email=messy,
            placeholder_email=self._placeholder(),
            uses_apple_mail=uses_apple_mail,
        )

