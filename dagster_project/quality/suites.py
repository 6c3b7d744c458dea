"""Quality suites: GX 1.x expectation suites stored as JSON in expectations/, one per gated asset.

A suite file is GX's own suite JSON (name, expectations, meta). Mailroom reads what it needs to run
the suite from `meta.mailroom`:

    asset         the gated Dagster asset key, slash-separated ("raw/cdp_events")
    table         the warehouse relation the batch reads ("raw.cdp_events")
    query         optional portable SQL used instead of `table` (joins for cross-checks)
    key_columns   columns that identify a failing row in the check metadata
    pii_columns   columns whose values are masked wherever they are reported
    json_columns  derived batch columns read from JSON text: {"traits_email": ["traits", "email"]}
    volume        optional row-volume band (see quality/volume.py)
    applies_to    "campaign_audiences" or "campaign_messages": a template suite, instantiated once per
                  campaign; {relation}, {campaign_id} and {audience_asset} in asset, table and query are
                  filled in for each

Each expectation's GX `severity` decides what a failure does: "critical" blocks everything
downstream, "warning" and "info" are reported only. Its GX `notes` (or `meta.notes`, or a
`description`) is shown next to its result, with its `row_condition` in words (see
`describe_expectations`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import great_expectations as gx
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

from dagster_project.quality.descriptions import ExpectationText, describe_expectations
from dagster_project.quality.volume import VolumeBand

BRAND_PARAMETERS = ("postal_address_regex", "subject_max_length")


class SuiteError(ValueError):
    """A suite file cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class QualitySuite:
    name: str
    path: Path
    asset: tuple[str, ...]
    table: str
    query: str | None
    key_columns: tuple[str, ...]
    pii_columns: frozenset[str]
    json_columns: dict[str, tuple[str, str]]
    volume: VolumeBand | None
    expectations: tuple[ExpectationConfiguration, ...] = field(repr=False)
    applies_to: str | None = None

    def for_campaign(self, campaign_id: str, relation: str, audience_asset: tuple[str, ...]) -> "QualitySuite":
        """This template suite made concrete for one campaign."""
        values = {"campaign_id": campaign_id, "relation": relation, "audience_asset": "/".join(audience_asset)}
        asset = "/".join(self.asset).format(**values)
        return replace(
            self,
            name=f"{self.name}__{campaign_id}",
            asset=tuple(asset.split("/")),
            table=self.table.format(**values),
            query=self.query.format(**values) if self.query else None,
            applies_to=None,
        )

    @property
    def uses_brand(self) -> bool:
        """Whether an expectation reads a brand parameter (postal_address_regex, subject_max_length)."""
        text = str([config.kwargs for config in self.expectations])
        return any(name in text for name in BRAND_PARAMETERS)

    @property
    def check_name(self) -> str:
        return "gx_" + self.path.stem.replace(".", "_").replace("-", "_")

    def referenced_columns(self) -> list[str]:
        """Columns the expectations read, so a batch loads only those (raw JSON payloads are wide)."""
        names: set[str] = set(self.key_columns)
        for config in self.expectations:
            kwargs = config.kwargs
            for key in ("column", "column_A", "column_B"):
                if isinstance(kwargs.get(key), str):
                    names.add(kwargs[key])
            for key in ("column_list", "column_set"):
                names.update(c for c in kwargs.get(key) or () if isinstance(c, str))
            names.update(_condition_columns(kwargs.get("row_condition")))
        return sorted(names)

    def described(self) -> tuple["ExpectationText", ...]:
        """What a person reads about each expectation, in suite order (see describe_expectations)."""
        return describe_expectations(self.expectations)

    def gx_suite(self) -> gx.ExpectationSuite:
        return gx.ExpectationSuite(
            name=self.name, expectations=[config.to_domain_obj() for config in self.expectations]
        )


def _condition_columns(condition) -> set[str]:
    if not isinstance(condition, dict):
        return set()
    names = {condition["column"]["name"]} if isinstance(condition.get("column"), dict) else set()
    for part in condition.get("conditions") or ():
        names |= _condition_columns(part)
    return names


def load_suite(path: Path) -> QualitySuite:
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SuiteError(f"{path}: not valid JSON ({error}); fix the file or remove it") from None
    mailroom = (document.get("meta") or {}).get("mailroom")
    if not isinstance(mailroom, dict):
        raise SuiteError(f"{path}: meta.mailroom is missing; it must name at least the asset and the table")
    for required in ("asset", "table"):
        if not mailroom.get(required):
            raise SuiteError(f"{path}: meta.mailroom.{required} is missing (see expectations/README.md)")
    expectations = []
    for position, raw in enumerate(document.get("expectations") or []):
        try:
            config = ExpectationConfiguration(**raw)
            config.to_domain_obj()  # validates the type and its arguments now, not mid-run
        except Exception as error:  # GX raises several unrelated types for a bad expectation
            raise SuiteError(
                f"{path}: expectation #{position + 1} ({raw.get('type', 'no type')}) is invalid: {error}"
            ) from None
        expectations.append(config)
    if not expectations and not mailroom.get("volume"):
        raise SuiteError(f"{path}: the suite has no expectations; add some or delete the file")
    json_columns = {}
    for name, spec in (mailroom.get("json_columns") or {}).items():
        if not (isinstance(spec, list) and len(spec) == 2):
            raise SuiteError(f"{path}: meta.mailroom.json_columns.{name} must be [json_column, key]")
        json_columns[name] = (spec[0], spec[1])
    return QualitySuite(
        name=document.get("name") or path.stem,
        path=path,
        asset=tuple(str(mailroom["asset"]).split("/")),
        table=mailroom["table"],
        query=mailroom.get("query"),
        key_columns=tuple(mailroom.get("key_columns") or ()),
        pii_columns=frozenset(mailroom.get("pii_columns") or ()),
        json_columns=json_columns,
        volume=_volume(mailroom.get("volume"), path),
        expectations=tuple(expectations),
        applies_to=_applies_to(mailroom.get("applies_to"), path),
    )


TEMPLATE_TARGETS = ("campaign_audiences", "campaign_messages")


def _applies_to(value, path: Path) -> str | None:
    if value is not None and value not in TEMPLATE_TARGETS:
        raise SuiteError(f"{path}: meta.mailroom.applies_to must be one of {', '.join(TEMPLATE_TARGETS)}")
    return value


def _volume(spec, path: Path) -> VolumeBand | None:
    if not spec:
        return None
    try:
        return VolumeBand.from_spec(spec, path)
    except (TypeError, ValueError) as error:
        raise SuiteError(str(error)) from None


def load_all(directory: Path) -> list[QualitySuite]:
    """Every suite file in `directory`, in file-name order, templates included."""
    suites = [load_suite(path) for path in sorted(directory.glob("*.json"))]
    seen: dict[tuple[str, ...], Path] = {}
    for suite in suites:
        if suite.applies_to:
            continue
        if suite.asset in seen:
            raise SuiteError(
                f"{suite.path} and {seen[suite.asset]} both gate {'/'.join(suite.asset)}; "
                "merge them into one suite per asset"
            )
        seen[suite.asset] = suite.path
    return suites


def load_suites(directory: Path) -> list[QualitySuite]:
    """The suites that gate one named asset each (not the per-campaign templates)."""
    return [suite for suite in load_all(directory) if not suite.applies_to]


def load_templates(directory: Path) -> list[QualitySuite]:
    """The per-campaign template suites (meta.mailroom.applies_to)."""
    return [suite for suite in load_all(directory) if suite.applies_to]


# The remainder a roll-out rendered last: the messages of the latest run whose remainder has its winner.
REMAINDER_QUERY = (
    "select m.* from ops.campaign_messages as m join ops.campaign_assignments as a "
    "on a.campaign_id = m.campaign_id and a.run_key = m.run_key and a.customer_id = m.customer_id "
    "where m.campaign_id = '{campaign_id}' and a.phase = 'remainder' and m.run_key = (select max(run_key) "
    "from ops.campaign_assignments where campaign_id = '{campaign_id}' and phase = 'remainder' and arm is not null)"
)


def remainder_suites(directory: Path, campaigns) -> list[QualitySuite]:
    """The messages template once more for each campaign with a roll-out experiment, on its
    campaigns/<id>/<id>_rollout asset and over the remainder it rendered: the remainder passes the gate the
    test passed before the sends asset below may hand anything over."""
    return [
        replace(template.for_campaign(campaign.campaign_id, campaign.relation, ()),
                name=f"{template.name}__{campaign.campaign_id}__remainder",
                asset=("campaigns", campaign.campaign_id, f"{campaign.campaign_id}_rollout"),
                query=REMAINDER_QUERY.format(campaign_id=campaign.campaign_id))
        for template in load_templates(directory) if template.applies_to == "campaign_messages"
        for campaign in campaigns if campaign.experiment and campaign.experiment.rolls_out
    ]


def runnable_suites(directory: Path, campaigns, audience_asset=lambda campaign: ("marts", campaign.model)):
    """Concrete suites plus every template made concrete for every campaign."""
    return load_suites(directory) + [
        template.for_campaign(campaign.campaign_id, campaign.relation, tuple(audience_asset(campaign)))
        for template in load_templates(directory)
        for campaign in campaigns
        # A journey campaign has no messages asset to gate: its journey renders one customer at a time.
        if template.applies_to != "campaign_messages" or campaign.campaign_type != "journey"
    ] + remainder_suites(directory, campaigns)
