"""The CRM contacts export (HubSpot column names). About 70% of customers have a contact; most carry
the application's user_id, the rest must be matched on email or phone (some hold a second, work email
the CDP never saw). A few contacts appear again later in the export with a later lastmodifieddate (a
new version), and CRM-only leads that never visited the shop are mixed in."""

from __future__ import annotations

from dagster_project.sample_data import phones, world
from dagster_project.sample_data.clock import DAY_MS, MINUTE_MS, Window
from dagster_project.sample_data.customers import Customer

HEADER = (
    "hs_object_id", "email", "firstname", "lastname", "phone", "mobilephone", "address", "city", "zip",
    "country", "hs_timezone", "lifecyclestage", "user_id", "createdate", "lastmodifieddate",
)
LATER_VERSION_SHARE = 0.04
LEAD_SHARE = 0.08  # CRM-only leads per customer
STAGE_ORDER = ("subscriber", "lead", "marketingqualifiedlead", "opportunity", "customer", "evangelist")


class CrmGenerator:
    def __init__(self, rng, window: Window, customers_total: int):
        self.rng = rng
        self.window = window
        self.next_object_id = 51
        self.lead_index = customers_total  # leads continue the customer index space: unique emails
        self.pending: list[tuple[int, list[str]]] = []  # (emit after customer index, row)
        self.contacts = 0
        self.leads = 0
        self.later_versions = 0
        self.rows = 0
        self.contact_id = ""  # hs_object_id of the last customer's contact, for the truth file

    def _object_id(self) -> str:
        self.next_object_id += self.rng.randint(1, 60)
        return str(self.next_object_id)

    def _timezone(self, tz: str) -> str:
        roll = self.rng.random()
        return world.hubspot_timezone(tz) if roll < 0.4 else tz if roll < 0.75 else ""

    def _country(self, code: str) -> str:
        return code.lower() if self.rng.random() < 0.05 else code

    def _clamp(self, ms: int) -> int:
        return min(ms, self.window.end_ms - MINUTE_MS)

    def _contact(self, c: Customer, consent_status: str) -> list[str]:
        rng, window, facts = self.rng, self.window, c.facts
        signup_ms = facts["signup_ms"] or c.first_seen_ms
        if rng.random() < 0.25:  # known to sales or the newsletter before signing up in the shop
            created = max(window.start_ms, signup_ms - rng.randint(DAY_MS, 30 * DAY_MS))
        else:  # synced from the application shortly after signup
            created = self._clamp(signup_ms + rng.randint(MINUTE_MS, 2 * DAY_MS))
        last_activity = max([created, facts.get("last_add_ms") or 0] + [ms for ms, _, _ in facts["orders"]])
        modified = self._clamp(max(created + MINUTE_MS, last_activity + rng.randint(MINUTE_MS, 3 * DAY_MS)))
        if facts["orders"]:
            stage = "customer" if rng.random() < 0.9 else "evangelist"
        elif facts.get("last_add_ms"):
            stage = "opportunity"
        elif consent_status == "opt_in":
            stage = "subscriber"
        else:
            stage = rng.choice(("lead", "marketingqualifiedlead", "other"))
        user_id_known = c.crm_user_id_known or (c.crm_email != c.email and c.phone is None)
        mobile = c.second_phone.written(rng) if c.second_phone is not None else ""
        return [
            self._object_id(),
            c.crm_email,
            c.first_name,
            c.last_name,
            c.phone.written(rng) if c.phone is not None and rng.random() < 0.85 else "",
            mobile,
            c.address if rng.random() < 0.8 else "",
            c.region.city,
            c.zip,
            self._country(c.country.code),
            self._timezone(c.timezone),
            stage,
            c.user_id if user_id_known else "",
            window.iso(created),
            window.iso(modified),
        ]

    def _later_version(self, row: list[str], c: Customer) -> list[str] | None:
        rng, window = self.rng, self.window
        modified = _parse_iso_ms(row[14]) + rng.randint(DAY_MS, 20 * DAY_MS)
        if modified >= window.end_ms - MINUTE_MS:
            return None
        version = list(row)
        change = rng.random()
        if change < 0.4 and not version[12]:
            version[12] = c.user_id  # the app sync caught up
        elif change < 0.7 and version[11] in STAGE_ORDER[:-1]:
            version[11] = STAGE_ORDER[STAGE_ORDER.index(version[11]) + 1]
        elif c.phone is not None:
            version[4] = c.phone.written(rng)
        version[14] = window.iso(modified)
        return version

    def _lead(self) -> list[str]:
        rng, window = self.rng, self.window
        self.lead_index += 1
        country = world.COUNTRY_DRAW.draw(rng)
        region = world.REGION_DRAW[country.code].draw(rng)
        names = world.NAMES[country.names]
        first, last = rng.choice(names[0]), rng.choice(names[1])
        local = f"{world.ascii_fold(first).lower()}.{world.ascii_fold(last).lower()}{self.lead_index}"
        domain = rng.choice(world.WORK_DOMAINS) if rng.random() < 0.4 else world.DOMAIN_DRAW[country.code].draw(rng)
        created = window.start_ms + rng.randrange(window.end_ms - window.start_ms - DAY_MS)
        modified = self._clamp(created + rng.randint(MINUTE_MS, 10 * DAY_MS))
        phone = phones.landline(country, region, self.lead_index, rng).written(rng) if rng.random() < 0.4 else ""
        self.leads += 1
        return [
            self._object_id(), f"{local}@{domain}", first, last, phone, "", "", region.city, "",
            self._country(country.code), self._timezone(region.timezone),
            rng.choice(("lead", "lead", "subscriber", "marketingqualifiedlead", "other")), "",
            window.iso(created), window.iso(modified),
        ]

    def customer_rows(self, c: Customer, consent_status: str) -> list[list[str]]:
        """Rows to write after customer `c`: its contact, versions that are due, maybe a lead."""
        rng = self.rng
        rows: list[list[str]] = []
        self.contact_id = ""
        if c.has_crm_contact:
            row = self._contact(c, consent_status)
            self.contact_id = row[0]
            rows.append(row)
            self.contacts += 1
            if rng.random() < LATER_VERSION_SHARE:
                version = self._later_version(row, c)
                if version is not None:
                    # The newer version shows up further down the export.
                    self.pending.append((c.index + rng.randint(1, 40), version))
        if any(at <= c.index for at, _ in self.pending):
            due = [row for at, row in self.pending if at <= c.index]
            self.pending = [(at, row) for at, row in self.pending if at > c.index]
            self.later_versions += len(due)
            rows.extend(due)
        if rng.random() < LEAD_SHARE:
            rows.append(self._lead())
        self.rows += len(rows)
        return rows

    def finish(self) -> list[list[str]]:
        rows = [row for _, row in self.pending]
        self.pending = []
        self.later_versions += len(rows)
        self.rows += len(rows)
        return rows


def _parse_iso_ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
