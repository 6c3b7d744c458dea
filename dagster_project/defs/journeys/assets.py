"""Each journey in dbt/models/journeys/ becomes one tick asset with one asset per step, chained in
step order below the journey's entry model, so the lineage reads

    journey_events -> journey_cart_abandonment -> cart_abandonment__wait_1h -> cart_abandonment__reminder -> ...

A send step also hangs below its campaign's content, and the campaign's sends asset below the step.
Materializing a journey runs one tick (journeys/evaluate.py) for every customer: new entries, exits and
goals, due steps; then hands the messages it planned to the destinations. Each step's metadata is the
state of the journey in ops (entered, waiting, sent, exited by reason), not only this run's changes.
"""

import json
from datetime import datetime, timezone

import dagster as dg
from dagster_dbt import get_asset_key_for_model
from pydantic import Field

from dagster_project.dbt_project import mailroom_dbt
from dagster_project.defs.activation.resource import ActivationResource
from dagster_project.defs.data_versions import fingerprint
from dagster_project.defs.journeys.metadata import journey_metadata, step_counts, step_metadata
from dagster_project.defs.personalization.campaign_assets import content_key, load_campaigns
from dagster_project.defs.personalization.resource import PersonalizationResource
from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
from dagster_project.journeys.evaluate import describe, next_due, tick
from dagster_project.journeys.spec import Journey, journeys_from_manifest
from dagster_project.personalization.campaigns import Campaign
from dagster_project.resources import WarehouseResource
from reverse_etl.run import send_campaigns

JOURNEY_GROUP = "journeys"
NEXT_DUE_FILE = "journeys_next_due.json"  # in the data directory: the minute schedule reads it, not the warehouse


def step_key(journey: Journey, step_id: str) -> dg.AssetKey:
    """journeys/<id>/<id>__<step>: the lineage graph labels a node with the key's last part."""
    return dg.AssetKey(["journeys", journey.journey_id, f"{journey.journey_id}__{step_id}"])


def load_journeys(campaigns: list[Campaign] | None = None) -> list[Journey]:
    campaigns = load_campaigns() if campaigns is None else campaigns
    return journeys_from_manifest(json.loads(mailroom_dbt.manifest_path.read_text()),
                                  {campaign.campaign_id: campaign.campaign_type for campaign in campaigns})


def journey_step_of_campaign(journeys: list[Journey]) -> dict[str, dg.AssetKey]:
    """campaign id -> the step asset that sends it (its sends asset hangs below that step)."""
    return {step.settings["campaign"]: step_key(journey, step.step_id)
            for journey in journeys for step in journey.steps if step.kind == "send"}


class JourneyClock(dg.Config):
    now: str = Field(default="", description=(
        "A simulated clock for demos and replays (ISO time, UTC): the tick runs as if it were this time. "
        "Empty (the schedule, the sensor, the daily job) means the real time. A time later than the real one "
        "releases waits early, so never set it on a production warehouse."))

    def tick_time(self) -> datetime:
        if not self.now:
            return datetime.now(timezone.utc).replace(tzinfo=None)
        try:
            chosen = datetime.fromisoformat(self.now)
        except ValueError:
            raise dg.Failure(f"journey clock: now={self.now!r} is not an ISO time; write e.g. 2026-11-01T09:30:00 "
                             "or leave it empty for the real time") from None
        return chosen.astimezone(timezone.utc).replace(tzinfo=None) if chosen.tzinfo else chosen


def build_journey_asset(journey: Journey, campaigns: dict[str, Campaign]) -> dg.AssetsDefinition:
    entry = get_asset_key_for_model([mailroom_dbt_models], journey.model)
    specs, previous = [], entry
    for step in journey.steps:
        deps = [previous]
        if step.kind == "send":
            deps.append(content_key(campaigns[step.settings["campaign"]]))
        specs.append(dg.AssetSpec(
            key=step_key(journey, step.step_id), deps=deps, group_name=JOURNEY_GROUP, owners=["team:marketing"],
            tags={"journey": journey.journey_id, "journey_step": step.kind},
            kinds={"python"}, description=_describe_step(journey, step)))
        previous = specs[-1].key

    @dg.multi_asset(name=f"{journey.journey_id}_tick", specs=specs, can_subset=False,
                    description=f"One tick of journey {journey.journey_id}: entries from {journey.model}, exits, goals "
                    "and every due step; then the planned messages are handed over.")
    def journey_tick(context: dg.AssetExecutionContext, config: JourneyClock, warehouse: WarehouseResource,
                     personalization: PersonalizationResource, activation: ActivationResource):
        now = config.tick_time()
        store = warehouse.warehouse()
        with store.session() as conn:
            [report] = tick(conn, [journey], campaigns, personalization.renderer(), now, owner=context.run.run_id)
        context.log.info(describe(report))
        if report.campaigns_to_send:
            for sent in send_campaigns(warehouse.settings, activation.settings, report.campaigns_to_send,
                                       log=context.log.info, run_id=context.run.run_id):
                context.log.info(f"{sent.campaign_id}: {sent.handed_over:,} handed over")
        with store.connect() as conn:
            counts = step_counts(conn, journey)  # once: the fast path waits for this
            overall = journey_metadata(conn, journey, counts)
            per_step = step_metadata(counts)
            versions = step_versions(counts)
            write_next_due(warehouse.settings.data_dir, journey.journey_id, next_due(conn, journey.journey_id))
        for step in journey.steps:
            metadata = {**per_step.get(step.step_id, {}), "this_tick": dg.MetadataValue.json(
                {outcome: count for (step_id, outcome), count in report.steps.items() if step_id == step.step_id})}
            if step is journey.steps[0]:
                metadata = {**overall, **metadata, "paused": report.paused or "no"}
            yield dg.MaterializeResult(asset_key=step_key(journey, step.step_id), metadata=metadata,
                                       data_version=versions[step.step_id])

    return journey_tick


def step_versions(steps: dict[str, dict]) -> dict[str, dg.DataVersion]:
    """Per step, a fingerprint of who reached it, waits there, got its message or left: a tick that
    moved nobody leaves the ops tables and the models below the step up to date."""
    return {step_id: fingerprint([sorted((name, sorted(value.items()) if isinstance(value, dict) else value)
                                         for name, value in counts.items())])
            for step_id, counts in steps.items()}


def _describe_step(journey: Journey, step) -> str:
    what = {
        "send": lambda s: f"sends campaign {s['campaign']} (on the frequency cap: {s['on_frequency_cap']})",
        "wait": lambda s: (f"waits {s['hours']:g} hours" if "hours" in s else
                           f"waits until {s['until_local']} local time, at least {s['after_days']} days on"),
        "branch": lambda s: "branches: " + "; ".join(f"if {case['if']} go to {case['goto']}" for case in s["cases"])
        + f"; else {s['else'] or 'the next step'}",
        "suppress": lambda s: f"suppresses further marketing mail ({s['suppress']})",
    }[step.kind](step.settings)
    return f"Journey {journey.journey_id}, step {step.step_id}: {what}."


def write_next_due(data_dir, journey_id: str, due: datetime | None) -> None:
    """Record when the journey next has a due step, atomically, for the minute schedule."""
    path = data_dir / NEXT_DUE_FILE
    known = read_next_due(data_dir)
    known[journey_id] = due.isoformat() if due else None
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(known, sort_keys=True))
    scratch.replace(path)


def read_next_due(data_dir) -> dict[str, str | None]:
    try:
        return json.loads((data_dir / NEXT_DUE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
