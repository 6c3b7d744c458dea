"""generate(): the whole sample data set, customer by customer, written as it is made.

Every random choice comes from a random.Random stream derived from the seed and the stream's name, and
every timestamp from the as_of window, so the same arguments give byte-identical files. Memory stays
flat as the customer count grows: a customer's events are written before the next customer is drawn;
only a few small buffers (recent lines for duplicates, CRM versions due later) are kept."""

from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

from dagster_project.sample_data import behaviour as behaviours
from dagster_project.sample_data import world
from dagster_project.sample_data.cdp import CdpGenerator
from dagster_project.sample_data.clock import DAY_MS, HOUR_MS, Window
from dagster_project.sample_data.consent import ConsentGenerator
from dagster_project.sample_data.crm import HEADER as CRM_HEADER
from dagster_project.sample_data.crm import CrmGenerator
from dagster_project.sample_data.customers import Population
from dagster_project.sample_data.dirt import KINDS, CdpDirt, ConsentDirt, CrmDirt, DirtLog, EspDirt
from dagster_project.sample_data.esp import EspGenerator
from dagster_project.sample_data.ids import Ids
from dagster_project.sample_data.writers import CsvRows, JsonLines, ShardedJsonLines

CATALOG_HEADER = ("product_id", "name", "category", "price", "currency", "is_active", "updated_at", "url")
TRUTH_HEADER = (
    # The documented latent truth (dagster_project/sample_data/README.md) ...
    "customer_key", "user_id", "email", "country", "jurisdiction", "timezone", "favourite_categories",
    "preferred_hour", "responsiveness", "n_devices", "has_crm_contact", "consent_status", "is_cart_abandoner",
    # ... and identity details that help check identity resolution and the ESP history.
    "first_name", "last_name", "phone_e164", "crm_email", "hs_object_id", "consent_lawful_basis", "n_orders",
    "uses_apple_mail", "hard_bounced", "signup_at",
)
ENGAGEMENT_HEADER = (
    # behaviour.py's response truth: what send-time optimization and propensity should recover.
    "customer_key", "email", "timezone", "reading_hour", "reading_hour_2", "second_weight", "peak_width_hours",
    "engagement_level", "lapse_at", "best_delivery_hour",
    *(f"attention_{hour:02d}" for hour in behaviours.DAYTIME_HOURS),
)
CAMPAIGN_EVERY_DAYS = 7  # a weekly newsletter: about 26 campaigns in the window
CAMPAIGN_HEADER = ("campaign_id", "name", "sent_at", "featured_category", "variants", "variant_open_lift",
                   "audience_share")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _remove_previous(out_dir: Path) -> None:
    """Shards from an earlier, larger run would otherwise be left behind next to the new ones."""
    for folder in ("cdp", "esp"):
        for path in (out_dir / folder).glob("events-*.jsonl*"):
            path.unlink()
    for path in out_dir.glob("*/.*.partial"):
        path.unlink()


def _write_catalog(out_dir: Path, products: list[world.Product], rng, window: Window) -> int:
    out = CsvRows(out_dir, "catalog/products.csv", CATALOG_HEADER)

    def stamp(ms: int) -> str:  # catalog exports often write naive UTC 'YYYY-MM-DD HH:MM:SS'
        return window.iso(ms)[:19].replace("T", " ")

    for product in products:
        listed = window.start_ms - rng.randint(30, 400) * DAY_MS + rng.randrange(DAY_MS)
        url = world.product_url(product.product_id)
        out.write([product.product_id, product.name, product.category, product.price_text, world.CURRENCY,
                   "true", stamp(listed), url])
        if not product.is_active:  # discontinued during the window: a second, inactive version
            retired = window.start_ms + rng.randint(5, window.days - 5) * DAY_MS + rng.randint(0, 23) * HOUR_MS
            out.write([product.product_id, product.name, product.category, product.price_text, world.CURRENCY,
                       "false", stamp(retired), url])
    out.close()
    return out.rows


def _write_campaigns(out_dir: Path, campaigns: list[world.Campaign], window: Window) -> None:
    out = CsvRows(out_dir, "truth/campaigns.csv", CAMPAIGN_HEADER)
    for campaign in campaigns:
        out.write([campaign.campaign_id, campaign.name, window.iso(campaign.send_ms), campaign.featured_category,
                   "|".join(v for v, _ in campaign.variants), "|".join(f"{lift:g}" for _, lift in campaign.variants),
                   f"{campaign.audience_share:g}"])
    out.close()


def _engagement_row(c, behaviour: behaviours.Behaviour, window: Window) -> list[str]:
    second = behaviour.reading_hour_2
    return [
        c.key, c.email, c.timezone, f"{behaviour.reading_hour:g}", "" if second is None else f"{second:g}",
        f"{behaviour.second_weight:g}", f"{behaviour.peak_width_hours:g}", f"{behaviour.level:.3f}",
        "" if behaviour.lapse_ms is None else window.iso(behaviour.lapse_ms), str(behaviour.best_delivery_hour()),
        *(f"{behaviour.attention(hour):.4f}" for hour in behaviours.DAYTIME_HOURS),
    ]


def generate(out_dir: Path, customers: int, seed: int, as_of: date, events_per_file: int = 250_000,
             gzip: bool = False) -> dict:
    """Write the sample landing files and truth into `out_dir`; return (and write) the summary."""
    if customers < 0:
        raise ValueError("customers must be >= 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous(out_dir)

    def stream(name: str) -> random.Random:
        return random.Random(f"mailroom-sample-data:{seed}:{name}")

    window = Window(as_of)
    ids = Ids(stream("ids"))
    products = world.build_catalog(stream("catalog"))
    campaigns = world.build_campaigns(stream("campaigns"), window.start_ms, window.end_ms, CAMPAIGN_EVERY_DAYS)
    catalog_rows = _write_catalog(out_dir, products, stream("catalog-versions"), window)
    _write_campaigns(out_dir, campaigns, window)

    population = Population(stream("customers"), ids, window)
    cdp = CdpGenerator(stream("cdp"), ids, window, products)
    consent = ConsentGenerator(stream("consent"), ids, window)
    esp = EspGenerator(stream("esp"), ids, window, campaigns, products)
    crm = CrmGenerator(stream("crm"), window, customers)

    cdp_out = ShardedJsonLines(out_dir, "cdp", events_per_file, gzip)
    esp_out = ShardedJsonLines(out_dir, "esp", events_per_file, gzip)
    consent_out = JsonLines(out_dir, "consent/consent-events.jsonl")
    crm_out = CsvRows(out_dir, "crm/contacts.csv", CRM_HEADER)
    truth_out = CsvRows(out_dir, "truth/customers.csv", TRUTH_HEADER)
    engagement_out = CsvRows(out_dir, "truth/engagement.csv", ENGAGEMENT_HEADER)
    behaviour_rng = stream("behaviour")  # its own stream: the other files' draws stay as they were
    log = DirtLog(out_dir)
    cdp_dirt = CdpDirt(stream("dirt-cdp"), ids, log)
    esp_dirt = EspDirt(stream("dirt-esp"), log)
    consent_dirt = ConsentDirt(stream("dirt-consent"), ids, log)
    crm_dirt = CrmDirt(stream("dirt-crm"), log)

    cdp_write, cdp_after = cdp_out.write, cdp_dirt.after
    orders = 0
    consent_counts = {"opt_in": 0, "opt_out": 0, "none": 0}
    abandoners = 0
    for index in range(1, customers + 1):
        c = population.make(index)
        lines = cdp.customer_lines(c)
        signed_up = c.facts["signed_up_line"]
        for line in lines:
            cdp_write(line)
            if line is not signed_up:  # the dirt injector sees (and draws for) the other lines only
                cdp_after(cdp_out, line)

        behaviour = behaviours.draw(behaviour_rng, c.preferred_hour, c.responsiveness, window)
        plan = consent.plan(c)
        esp_lines, unsubscribed_ms = esp.customer_lines(c, behaviour, plan.opt_in_ms, plan.opt_out_ms,
                                                        plan.unsubscribe_by_link)
        for line in esp_lines:
            esp_out.write(line)
            esp_dirt.after(esp_out, line)
        for line in consent.customer_lines(c, plan, unsubscribed_ms):
            consent_out.write(line)
            consent_dirt.after(consent_out, line)

        status = plan.status
        for row in crm.customer_rows(c, status):
            crm_out.write(row)
            crm_dirt.after(crm_out, row)

        facts = c.facts
        orders += len(facts["orders"])
        consent_counts[status] += 1
        abandoners += facts["is_cart_abandoner"]
        truth_out.write([
            c.key, c.user_id, c.email, c.country.code, c.country.jurisdiction, c.timezone,
            "|".join(c.favourite_categories), str(c.preferred_hour), f"{c.responsiveness:.3f}",
            str(facts["n_devices"]), _bool(c.has_crm_contact), status, _bool(facts["is_cart_abandoner"]),
            c.first_name, c.last_name, c.phone.e164 if c.phone is not None else "",
            c.crm_email if c.has_crm_contact else "", crm.contact_id, plan.lawful_basis or "",
            str(len(facts["orders"])), _bool(c.uses_apple_mail), _bool(facts.get("hard_bounced", False)),
            window.iso(facts["signup_ms"]) if facts["signup_ms"] is not None else "",
        ])

        engagement_out.write(_engagement_row(c, behaviour, window))

    for row in crm.finish():
        crm_out.write(row)
        crm_dirt.after(crm_out, row)
    cdp_dirt.finish(cdp_out)
    esp_dirt.finish(esp_out)
    consent_dirt.finish(consent_out)
    crm_dirt.finish(crm_out)
    for out in (cdp_out, esp_out, consent_out, crm_out, truth_out, engagement_out, log):
        out.close()

    files = {**cdp_out.files, **esp_out.files, **consent_out.files, **crm_out.files,
             "catalog/products.csv": catalog_rows + 1}
    summary = {
        "customers": customers,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "events_per_file": events_per_file,
        "gzip": gzip,
        "window_days": window.days,
        "cdp_events": cdp_out.lines,
        "cdp_files": len(cdp_out.files),
        **{f"cdp_{kind}_events": count for kind, count in cdp.counts.items()},
        "orders": orders,
        "cart_abandoners": abandoners,
        "shared_devices": population.shared.devices_created,
        "crm_rows": crm_out.rows,
        "crm_contacts": crm.contacts,
        "crm_leads": crm.leads,
        "crm_later_versions": crm.later_versions,
        "consent_events": consent_out.lines,
        "consent_opt_in": consent_counts["opt_in"],
        "consent_opt_out": consent_counts["opt_out"],
        "consent_none": consent_counts["none"],
        "catalog_products": len(products),
        "catalog_rows": catalog_rows,
        "campaigns": len(campaigns),
        "esp_events": esp_out.lines,
        "esp_files": len(esp_out.files),
        "esp_sends": esp.sends,
        "esp_hard_bounces": esp.hard_bounces,
        "dirty_rows": log.total,
        "dirty_by_source": dict(sorted(log.by_source.items())),
        "dirty_by_kind": {kind: log.by_kind[kind] for kind in KINDS},
        "files": dict(sorted(files.items())),
    }
    (out_dir / "truth" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
