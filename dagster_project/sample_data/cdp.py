"""One customer's CDP history as Segment-spec JSON lines: anonymous browsing that turns into a signup
(identify), logins on further devices (identify, or alias for some), product views that favour the
customer's latent categories, carts, checkouts and orders, and recent abandoned carts for the latent
cart abandoners. Sessions cluster around the customer's preferred local hour.

The signup also sends a 'Signed Up' track event, and about BIRTHDAY_SHARE of the customers give a
`birthday` trait at signup. Both are derived from a hash of the customer's user id, never drawn from
the shared random stream, so every other event is the same as without them."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta

from dagster_project.sample_data import world
from dagster_project.sample_data.clock import DAY_MS, HOUR_MS, MINUTE_MS, Window
from dagster_project.sample_data.customers import Customer
from dagster_project.sample_data.ids import Ids

ABANDON_WINDOW_DAYS = 14  # "recent" for is_cart_abandoner: the 14 days before as_of
CART_SHARE = 0.24  # sessions of a signed-up customer that put something in the cart
MAX_SESSIONS = 40
SESSION_GAP_MS = 80 * MINUTE_MS  # sessions never overlap: none lasts longer than this
RELOGIN_SHARE = 0.10  # identified sessions that start with a fresh identify (traits refresh)
BIRTHDAY_SHARE = 0.6  # customers whose signup traits carry a birthday (Segment spec: "YYYY-MM-DD")
SIGNUP_METHODS = ("email", "email", "email", "google", "apple")
REFERRERS = ("https://www.google.com/", "https://www.google.com/", "https://www.instagram.com/",
             "https://www.facebook.com/", "https://duckduckgo.com/", None, None, None)

encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


def _hashed(c: Customer, purpose: str) -> int:
    """A number fixed by the customer and the purpose, independent of every random stream."""
    return int.from_bytes(hashlib.blake2b(f"{c.user_id}:{purpose}".encode(), digest_size=16).digest(), "big")


def signup_event_id(c: Customer) -> str:
    """The messageId of the customer's 'Signed Up' event: UUID4-shaped, from the hash."""
    bits = _hashed(c, "signed-up")
    return (f"{bits >> 96:08x}-{(bits >> 80) & 0xFFFF:04x}-4{(bits >> 68) & 0xFFF:03x}-"
            f"{0x8000 | ((bits >> 52) & 0x3FFF):04x}-{bits & 0xFFFFFFFFFFFF:012x}")


def birthday(c: Customer, as_of_year: int) -> str | None:
    """The birthday the customer gives at signup ("YYYY-MM-DD", aged 18 to 75), or None for about
    40% of the customers."""
    bits = _hashed(c, "birthday")
    if bits % 1000 >= BIRTHDAY_SHARE * 1000:
        return None
    year = as_of_year - 18 - (bits >> 10) % 58
    first = date(year, 1, 1)
    days = (date(year + 1, 1, 1) - first).days
    return (first + timedelta(days=(bits >> 20) % days)).isoformat()


def _pages(products: list[world.Product]) -> dict:
    """Page properties, built once: product pages, category pages and the home page."""
    pages = {"home": {"path": "/", "url": f"{world.SHOP_URL}/", "title": "Shop"}}
    for category in world.CATEGORIES:
        path = f"/c/{category.slug}"
        pages[category.slug] = {"path": path, "url": world.SHOP_URL + path, "title": f"{category.title} | Shop"}
    for product in products:
        url = world.product_url(product.product_id)
        pages[product.product_id] = {"path": url.removeprefix(world.SHOP_URL), "url": url,
                                     "title": f"{product.name} | Shop"}
    return pages


class CdpGenerator:
    def __init__(self, rng, ids: Ids, window: Window, products: list[world.Product]):
        self.rng = rng
        self.ids = ids
        self.window = window
        self.picker = world.ProductPicker(products)
        self.pages = _pages(products)
        self.counts = {"identify": 0, "track": 0, "page": 0, "alias": 0}
        self.as_of_year = int(window.iso(window.end_ms)[:4])

    # -- session plan ---------------------------------------------------------------------------

    def _session_start(self, c: Customer, day: int) -> int:
        rng = self.rng
        if rng.random() < 0.55:
            hour = rng.gauss(c.preferred_hour, 1.2)  # around the hour they like to shop
            hour = hour + 24 if hour < 3 else hour  # night owls: 0-2 h belongs to the evening before
        else:
            hour = rng.uniform(7, 23.4)
        hour = min(max(hour, 6.0), 23.4)
        return self.window.local_to_utc_ms(c.timezone, day, int(hour * HOUR_MS) + rng.randrange(60_000))

    def _plan(self, c: Customer) -> tuple[list[int], list[int], int, list[str | None]]:
        """Session starts, the device of each session, the signup session, and each session's cart
        outcome (None, 'order', 'checkout_abandon', 'cart_abandon')."""
        rng, window = self.rng, self.window
        end_day = window.end_ms // DAY_MS
        # Local days whose evening still ends before as_of in UTC.
        last_day = end_day - (1 if window.offset_seconds(c.timezone, end_day - 1) >= 0 else 2)
        first_day = min(c.first_seen_ms // DAY_MS, last_day)
        n_devices = len(c.devices)

        n = 1 + int(rng.expovariate(1.0 / c.sessions_extra_mean))
        n = min(max(n, n_devices), MAX_SESSIONS)
        days = last_day - first_day + 1
        n = min(n, max(n_devices, 2 * days))  # a customer who arrived yesterday has had little time
        picked = rng.sample(range(first_day, last_day + 1), n) if n <= days else \
            [rng.randint(first_day, last_day) for _ in range(n)]
        starts = sorted(self._session_start(c, day) for day in picked)
        for i in range(1, n):  # no overlapping sessions, so "later" means later for every event
            starts[i] = max(starts[i], starts[i - 1] + SESSION_GAP_MS)

        # Some people browse anonymously for a session or two before signing up.
        signup = 0 if rng.random() < 0.7 else min(rng.randint(1, 2), n - n_devices)
        signup = max(signup, 0)

        recent_ms = window.end_ms - ABANDON_WINDOW_DAYS * DAY_MS
        if c.is_cart_abandoner and starts[-1] < recent_ms:
            # The abandoned cart must be recent: add a visit in the last two weeks.
            low = max(starts[-1] + SESSION_GAP_MS, recent_ms + DAY_MS)
            high = max(low, (last_day + 1) * DAY_MS - 6 * HOUR_MS)
            starts.append(rng.randint(low, high))
            n += 1

        devices = [0] * n
        if n_devices > 1:
            later = list(range(signup + 1, n))
            firsts = rng.sample(later, n_devices - 1)
            for device, index in enumerate(firsts, start=1):
                devices[index] = device
            first_use = {index: device for device, index in enumerate(firsts, start=1)}
            for index in later:
                if index in first_use:
                    continue
                seen = [d for d, i in enumerate([0] + firsts) if i <= index or d == 0]
                devices[index] = 0 if rng.random() < 0.5 else rng.choice(seen)

        outcomes: list[str | None] = [None] * n
        for i in range(signup, n):
            if rng.random() < CART_SHARE:
                roll = rng.random()
                outcomes[i] = "order" if roll < 0.55 else "checkout_abandon" if roll < 0.70 else "cart_abandon"
        if c.is_cart_abandoner:
            outcomes[n - 1] = rng.choice(("cart_abandon", "checkout_abandon"))
        else:
            carts = [i for i in range(n) if outcomes[i]]
            if carts and starts[carts[-1]] >= recent_ms:
                outcomes[carts[-1]] = "order"  # a recent cart of a non-abandoner converts
        return starts, devices, signup, outcomes

    # -- events ---------------------------------------------------------------------------------

    def customer_lines(self, c: Customer) -> list[str]:
        """The customer's CDP events as JSON lines in time order; facts go to c.facts."""
        rng, window, ids, pages = self.rng, self.window, self.ids, self.pages
        iso = window.iso
        limit_ms = window.end_ms - 1000
        counts = self.counts
        starts, session_devices, signup_index, outcomes = self._plan(c)

        lines: list[str] = []
        identified = [False] * len(c.devices)
        signed_up = False
        used_devices: set[str] = set()  # anonymousIds that made it into the output
        facts = c.facts
        born = birthday(c, self.as_of_year)
        facts.update(signup_ms=None, orders=[], last_add_ms=None, add_ms=[], identified_sessions_ms=[], birthday=born,
                     signed_up_line=None)
        uid = c.user_id

        random = rng.random  # rng.randint is several times slower than arithmetic on random()

        def emit(payload: dict, ms: int, device) -> None:
            if ms >= limit_ms:  # never past as_of (only possible for pushed-back last sessions)
                return
            payload["timestamp"] = iso(ms)
            payload["receivedAt"] = iso(ms + 40 + int(random() * 2500))
            body = encode(payload)
            lines.append(f'{body[:-1]},"context":{device.context_json}}}')
            counts[payload["type"]] += 1
            used_devices.add(device.anonymous_id)

        def base(kind: str, device, known: bool) -> dict:
            payload = {"messageId": ids.uuid(), "type": kind}
            if known:
                payload["userId"] = uid
            payload["anonymousId"] = device.anonymous_id
            return payload

        def signup_traits(ms: int) -> dict:
            traits = {"email": c.email_as_typed, "first_name": c.first_name, "last_name": c.last_name,
                      "country": c.country.code, "city": c.region.city, "created_at": iso(ms)}
            if born is not None:
                traits["birthday"] = born
            if c.phone is not None:
                traits["phone"] = c.phone.written(rng)
            return traits

        def login_traits() -> dict:
            traits = {"email": c.email_as_typed if c.messy_email and rng.random() < 0.5 else c.email}
            if c.phone is not None and rng.random() < 0.3:
                traits["phone"] = c.phone.written(rng)
            if rng.random() < 0.5:
                traits["country"] = c.country.code
            return traits

        def signed_up_event(device, ms: int) -> None:
            """'Signed Up' right after the signup's identify: no draw from rng (see the module doc), and
            kept out of the dirt injector (generate() passes it by), whose draws follow every line."""
            if ms >= limit_ms:
                return
            bits = _hashed(c, "signed-up-at")
            payload = {"messageId": signup_event_id(c), "type": "track", "userId": uid,
                       "anonymousId": device.anonymous_id, "event": "Signed Up",
                       "properties": {"method": SIGNUP_METHODS[bits % len(SIGNUP_METHODS)]},
                       "timestamp": iso(ms), "receivedAt": iso(ms + 40 + (bits >> 8) % 2500)}
            body = encode(payload)
            line = f'{body[:-1]},"context":{device.context_json}}}'
            lines.append(line)
            facts["signed_up_line"] = line
            counts["track"] += 1

        def login(index: int, device, ms: int) -> int:
            """Identify (or alias) this device; the first time is the signup. Returns the new time."""
            nonlocal signed_up
            if index == c.alias_device:
                payload = base("alias", device, True)
                payload["previousId"] = device.anonymous_id
                emit(payload, ms, device)
                ms += rng.randint(200, 3000)
                if signed_up:  # a later device linked only by the alias
                    identified[index] = True
                    return ms
            payload = base("identify", device, True)
            payload["traits"] = login_traits() if signed_up else signup_traits(ms)
            emit(payload, ms, device)
            if not signed_up:
                signed_up = True
                facts["signup_ms"] = ms
                signed_up_event(device, ms + 1 + _hashed(c, "signed-up-delay") % 150)
                if c.placeholder_email:  # a test submission or a form that sends placeholders
                    ms += rng.randint(1000, 20_000)
                    payload = base("identify", device, True)
                    payload["traits"] = {"email": c.placeholder_email, "first_name": c.first_name}
                    emit(payload, ms, device)
            identified[index] = True
            return ms + rng.randint(500, 4000)

        def page(index: int, ms: int, name: str, props: dict) -> None:
            device = c.devices[index]
            payload = base("page", device, identified[index])  # userId once this device is identified
            payload["name"] = name
            payload["properties"] = props
            emit(payload, ms, device)

        def track(index: int, ms: int, event: str, props: dict) -> None:
            device = c.devices[index]
            payload = base("track", device, identified[index])
            payload["event"] = event
            payload["properties"] = props
            emit(payload, ms, device)

        for session, start in enumerate(starts):
            index = session_devices[session]
            device = c.devices[index]
            ms = start
            if device.shared or (identified[index] and rng.random() < RELOGIN_SHARE):
                ms = login(index, device, ms)  # shared computers: everybody logs in every time
            if identified[index]:
                facts["identified_sessions_ms"].append(ms)
            login_after = -1
            if not identified[index] and session >= signup_index:
                login_after = rng.randint(1, 2)  # browse a little, then sign up / log in

            # Landing page
            referrer = rng.choice(REFERRERS)
            roll = rng.random()
            if roll < 0.5:
                name, props = "Home", pages["home"]
            else:
                name, props = "Category", pages[c.draw_category(rng)]
            if referrer:
                props = {**props, "referrer": referrer}
            page(index, ms, name, props)
            steps = 1

            viewed: list[world.Product] = []
            n_views = 1
            while n_views < 8 and rng.random() < 0.5:
                n_views += 1
            for _ in range(n_views):
                ms += 15_000 + int(random() * 135_000)
                if steps == login_after and not identified[index]:
                    ms = login(index, device, ms)
                product = self.picker.draw(rng, c.draw_category(rng))
                viewed.append(product)
                if random() < 0.3:
                    page(index, ms, "Product", pages[product.product_id])
                    ms += 500 + int(random() * 2500)
                track(index, ms, "Product Viewed", product.props)
                steps += 1

            if login_after >= 0 and not identified[index]:
                ms = login(index, device, ms + 5_000 + int(random() * 60_000))  # every device gets linked

            outcome = outcomes[session]
            if outcome is None:
                continue
            ms += rng.randint(10_000, 120_000)
            if not identified[index]:
                ms = login(index, device, ms)  # carts belong to a logged-in customer
            cart_id = ids.uuid()
            items = []
            for product in (viewed[-1], rng.choice(viewed)) if rng.random() < 0.25 else (viewed[-1],):
                if any(item["product_id"] == product.product_id for item in items):
                    continue
                quantity = 1 if rng.random() < 0.85 else 2
                items.append({**product.props, "quantity": quantity})
                track(index, ms, "Product Added", {"cart_id": cart_id, **product.props, "quantity": quantity})
                if ms < limit_ms:
                    facts["last_add_ms"] = ms
                    facts["add_ms"].append(ms)  # intent: a recent cart makes an email click likelier
                ms += rng.randint(5_000, 90_000)
            if outcome == "cart_abandon":
                continue
            total = round(sum(item["price"] * item["quantity"] for item in items), 2)
            track(index, ms, "Checkout Started", {"cart_id": cart_id, "value": total, "revenue": total,
                                                   "currency": world.CURRENCY, "products": items})
            if outcome == "checkout_abandon":
                continue
            ms += rng.randint(30_000, 240_000)
            order_id = f"R{ids.number()}"
            track(index, ms, "Order Completed", {"order_id": order_id, "cart_id": cart_id, "total": total,
                                                  "revenue": total, "currency": world.CURRENCY, "products": items})
            if ms < limit_ms:
                facts["orders"].append((ms, order_id, total))

        facts["n_devices"] = len(used_devices)
        last_add = facts["last_add_ms"]
        facts["is_cart_abandoner"] = (
            last_add is not None
            and last_add >= window.end_ms - ABANDON_WINDOW_DAYS * DAY_MS
            and not any(order_ms > last_add for order_ms, _, _ in facts["orders"])
        )
        facts["last_seen_ms"] = starts[-1]
        return lines
