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

Each expectation's GX `severity` decides what a failure does: "critical" blocks everything
downstream, "warning" and "info" are reported only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import great_expectations as gx
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

from dagster_project.quality.volume import VolumeBand


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
    )


def _volume(spec, path: Path) -> VolumeBand | None:
    if not spec:
        return None
    try:
        return VolumeBand.from_spec(spec, path)
    except (TypeError, ValueError) as error:
        raise SuiteError(str(error)) from None


def load_suites(directory: Path) -> list[QualitySuite]:
    """Every suite in `directory`, in file-name order; two suites may not gate the same asset."""
    suites = [load_suite(path) for path in sorted(directory.glob("*.json"))]
    seen: dict[tuple[str, ...], Path] = {}
    for suite in suites:
        if suite.asset in seen:
            raise SuiteError(
                f"{suite.path} and {seen[suite.asset]} both gate {'/'.join(suite.asset)}; "
                "merge them into one suite per asset"
            )
        seen[suite.asset] = suite.path
    return suites
