"""ops.phone_numbers: phone spellings normalized to E.164 in Python (libphonenumber), for dbt's
identity resolution to match on."""

import dagster as dg

from dagster_project.defs.kinds import warehouse_kind
from dagster_project.identity.phone_table import build_phone_numbers
from dagster_project.resources import WarehouseResource


@dg.asset(
    key=["ops", "phone_numbers"],
    deps=[dg.AssetKey(["raw", "cdp_events"]), dg.AssetKey(["raw", "crm_contacts"])],
    group_name="warehouse",
    description=(
        "Every distinct phone spelling from CDP traits and CRM contacts with its E.164 form, or the "
        "reason it has none. National numbers are read in the record's country, else in "
        "MAILROOM_PHONE_DEFAULT_REGION. Each run normalizes only the spellings it has not seen (all of "
        "them again when the default region changes)."
    ),
    owners=["team:analytics-engineering"],
    kinds={"python", warehouse_kind()},
    tags={"domain": "identity"},
)
def phone_numbers(warehouse: WarehouseResource) -> dg.MaterializeResult:
    outcome = build_phone_numbers(warehouse.warehouse(), warehouse.settings.phone_default_region)
    return dg.MaterializeResult(
        metadata={"valid_spellings": outcome["valid"], "invalid_spellings": outcome["invalid"],
                  "spellings_added": outcome["added"]},
        # The same spellings give the same table; a spelling once added is kept as it was normalized.
        data_version=dg.DataVersion(f"valid-{outcome['valid']}-invalid-{outcome['invalid']}"),
    )
