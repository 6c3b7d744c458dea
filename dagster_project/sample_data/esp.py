"""SendGrid Event Webhook events for past campaign sends to one customer: processed, delivered
(sometimes deferred first), opens and clicks drawn from the customer's behaviour (behaviour.py: when they
read, how engaged they are, a recent cart; an A/B variant may lift opens), Apple Mail Privacy Protection
machine opens, hard bounces for dead mailboxes (then dropped), rare spam reports, and the
unsubscribe-link clicks that become consent opt-outs. An earlier platform explored send times: a share
of each batch went out at a random local daytime hour, so every hour has some history."""

from __future__ import annotations

from dagster_project.sample_data import behaviour as behaviours
from dagster_project.sample_data import world
from dagster_project.sample_data.cdp import encode
from dagster_project.sample_data.clock import HOUR_MS, MINUTE_MS, Window
from dagster_project.sample_data.customers import Customer
from dagster_project.sample_data.ids import Ids

MPP_USER_AGENT = "Mozilla/5.0"  # what Apple's privacy proxy sends when it prefetches a message
HARD_BOUNCE = {
    "type": "bounce",
    "status": "5.1.1",
    "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
    "bounce_classification": "Invalid Address",
}
SOFT_BLOCK = {
    "type": "blocked",
    "status": "4.7.1",
    "reason": "421 4.7.1 Temporary rate limit exceeded for this sender, try again later.",
    "bounce_classification": "Reputation",
}
DEAD_MAILBOX_SHARE = 0.012  # of recipients: the address no longer exists, hard bounce on the first send
DEAD_MAILBOX_EARLY_SHARE = 0.05  # until two hard bounces have happened, so small samples have some
SPAM_REPORT_SHARE = 0.0015
DEFERRED_SHARE = 0.02
BLOCKED_SHARE = 0.004
EXPLORED_SHARE = 0.4  # of each batch's recipients: sent at a random local hour in EXPLORED_HOURS
EXPLORED_HOURS = (8, 21)


class EspGenerator:
    def __init__(self, rng, ids: Ids, window: Window, campaigns: list[world.Campaign], products):
        self.rng = rng
        self.ids = ids
        self.window = window
        self.campaigns = campaigns
        self.picker = world.ProductPicker(products)
        self.sends = 0
        self.hard_bounces = 0

    def _click_url(self, c: Customer, campaign: world.Campaign) -> str:
        rng = self.rng
        category = campaign.featured_category if rng.random() < 0.4 else c.draw_category(rng)
        product = self.picker.draw(rng, category)
        return (f"{world.product_url(product.product_id)}?utm_source=mailroom&utm_medium=email"
                f"&utm_campaign={campaign.campaign_id}")

    def _human_open_ms(self, c: Customer, delivered_ms: int) -> int:
        """When a person opens: mostly at their preferred local hour, sometimes whenever they look."""
        rng = self.rng
        if rng.random() < 0.75:
            at = self.window.next_local_hour(c.timezone, delivered_ms, c.preferred_hour + rng.random())
            return max(delivered_ms + MINUTE_MS, at + int(rng.gauss(0, 35) * MINUTE_MS))
        return delivered_ms + int(rng.expovariate(1 / (3 * HOUR_MS)))

    def _send_ms(self, c: Customer, campaign: world.Campaign) -> int:
        rng = self.rng
        if rng.random() < EXPLORED_SHARE:
            return self.window.next_local_hour(c.timezone, campaign.send_ms, rng.uniform(*EXPLORED_HOURS))
        return campaign.send_ms + rng.randint(0, 40 * MINUTE_MS)

    def customer_lines(self, c: Customer, behaviour: behaviours.Behaviour, opt_in_ms: int | None,
                       opt_out_ms: int | None, unsubscribe_by_link: bool) -> tuple[list[str], int | None]:
        """Events for every campaign the customer received while opted in. Returns the JSON lines in
        time order and, when the customer unsubscribed through a link, when that happened."""
        if opt_in_ms is None:
            return [], None
        rng, ids, window = self.rng, self.ids, self.window
        end_ms = window.end_ms - 1000
        stop_ms = opt_out_ms if opt_out_ms is not None else end_ms
        received = [
            (campaign, self._send_ms(c, campaign)) for campaign in self.campaigns
            if opt_in_ms < campaign.send_ms < stop_ms and rng.random() < campaign.audience_share
        ]
        received = [(campaign, sent_ms) for campaign, sent_ms in received if sent_ms < stop_ms]
        events: list[tuple[int, dict]] = []
        unsubscribed_ms = None
        bounced = False
        dead_mailbox = bool(received) and rng.random() < (
            DEAD_MAILBOX_EARLY_SHARE if self.hard_bounces < 2 else DEAD_MAILBOX_SHARE)
        agent, ip = c.devices[0].user_agent, c.devices[0].ip  # people read mail on their main device

        for number, (campaign, sent_ms) in enumerate(received):
            self.sends += 1
            variant_id, lift = rng.choice(campaign.variants)
            common = {
                "email": c.email,
                "sg_message_id": f"{ids.token()}.filterdrecv-{rng.randint(5, 9)}d{rng.randint(100, 999)}-1.0",
                "category": list(campaign.categories),
                "mailroom_message_id": ids.uuid(),
                "campaign_id": campaign.campaign_id,
                "variant_id": variant_id,
            }

            def add(ms: int, event: str, **fields) -> None:
                if ms < end_ms:
                    events.append((ms, {"event": event, **common, **fields}))

            add(sent_ms, "processed", **{"smtp-id": f"<{ids.token()}@geopod-ismtpd-{rng.randint(1, 40)}>"})
            if bounced:  # SendGrid suppresses the address after a hard bounce
                add(sent_ms + 1000, "dropped", reason="Bounced Address", status="5.0.0")
                break
            if dead_mailbox:
                add(sent_ms + rng.randint(2000, 20_000), "bounce", **HARD_BOUNCE)
                bounced = True
                c.facts["hard_bounced"] = True
                self.hard_bounces += 1
                continue
            delivered_ms = sent_ms + rng.randint(1000, 25_000)
            if rng.random() < BLOCKED_SHARE:
                add(delivered_ms, "bounce", **SOFT_BLOCK)
                continue
            if rng.random() < DEFERRED_SHARE:
                add(delivered_ms, "deferred", response="421 4.7.0 Try again later", attempt="1")
                delivered_ms += rng.randint(5, 45) * MINUTE_MS
            add(delivered_ms, "delivered", response="250 2.0.0 OK")

            if c.uses_apple_mail:  # the proxy fetches every message within minutes of delivery
                add(delivered_ms + rng.randint(30_000, 20 * MINUTE_MS), "open", sg_machine_open=True,
                    useragent=MPP_USER_AGENT,
                    ip=f"17.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")

            last = number == len(received) - 1
            must_unsubscribe = unsubscribe_by_link and last
            weekend = behaviours.is_weekend(window, c.timezone, delivered_ms)
            open_probability = behaviour.open_probability(
                delivered_ms, window.local_hour(c.timezone, delivered_ms), weekend, lift)
            if must_unsubscribe or rng.random() < open_probability:
                open_ms = self._human_open_ms(c, delivered_ms)
                add(open_ms, "open", sg_machine_open=False, useragent=agent, ip=ip)
                if rng.random() < 0.2:  # came back to it later
                    add(open_ms + rng.randint(1, 30) * HOUR_MS, "open", sg_machine_open=False, useragent=agent, ip=ip)
                if rng.random() < behaviour.click_probability(delivered_ms, c.facts["add_ms"]):
                    add(open_ms + rng.randint(15_000, 400_000), "click", url=self._click_url(c, campaign),
                        useragent=agent, ip=ip, url_offset={"index": rng.randint(0, 6), "type": "html"})
                if must_unsubscribe and open_ms + 120_000 < end_ms:
                    unsubscribed_ms = open_ms + rng.randint(20_000, 120_000)
                    add(unsubscribed_ms, "unsubscribe", useragent=agent, ip=ip)
                elif rng.random() < SPAM_REPORT_SHARE:
                    add(open_ms + rng.randint(60_000, 600_000), "spamreport")
                    break  # suppressed from now on

        events.sort(key=lambda pair: pair[0])
        lines = []
        for ms, payload in events:
            payload["timestamp"] = ms // 1000
            payload["sg_event_id"] = ids.token()
            lines.append(encode(payload))
        return lines, unsubscribed_ms
