"""The one place that reads Mailroom's environment.

Everything else receives a `Settings` object (or a Dagster resource built from one), so tests,
the CLI, the benchmark and Dagster all agree on which warehouse and which directories are in use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

WAREHOUSES = ("duckdb", "postgres")


def project_root() -> Path:
    """The checkout holding dbt/ when installed in editable mode, else the working directory."""
    package_parent = Path(__file__).resolve().parents[1]
    return package_parent if (package_parent / "dbt" / "dbt_project.yml").exists() else Path.cwd()


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable and the fix."""


@dataclass(frozen=True)
class PostgresTarget:
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    dbname: str = "mailroom"

    @property
    def url(self) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    @property
    def libpq_environment(self) -> dict[str, str]:
        """The standard PG* variables, which dbt/profiles.yml reads for the postgres target."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.dbname,
        }


def parse_postgres_url(url: str, variable: str = "MAILROOM_PG_URL") -> PostgresTarget:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise SettingsError(
            f"{variable}={url!r} is not a PostgreSQL URL; "
            "use the form postgresql://user:password@host:5432/database"
        )
    dbname = parts.path.lstrip("/") or "mailroom"
    return PostgresTarget(
        host=parts.hostname,
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        dbname=dbname,
    )


@dataclass(frozen=True)
class Settings:
    warehouse: str = "duckdb"
    data_dir: Path = field(default_factory=lambda: project_root() / "data")
    landing_dir: Path | None = None
    duckdb_path: Path | None = None
    postgres: PostgresTarget = field(default_factory=PostgresTarget)
    # Region for phone numbers written without a country code when the record has no country.
    phone_default_region: str = "US"
    # Evaluate time-based rules (CASL expiry, recency) at this UTC date instead of now; for
    # reproducible runs and tests. Passed to dbt as MAILROOM_AS_OF.
    as_of: str = ""
    # Quality suites (GX JSON), one per gated asset.
    expectations_dir: Path = field(default_factory=lambda: project_root() / "expectations")
    # HTML and text previews of each campaign run's messages, one folder per campaign; the receiver
    # serves them read-only at /preview/.
    previews_dir: Path | None = None
    # Where `audit anchor` appends the audit chain's head (optional): a file the warehouse's writers cannot
    # change, so a deleted tail or a rewritten chain is detected (dagster_project/privacy/audit.py).
    audit_anchor_file: Path | None = None

    def __post_init__(self) -> None:
        if self.warehouse not in WAREHOUSES:
            raise SettingsError(
                f"MAILROOM_WAREHOUSE={self.warehouse!r} is not supported; use one of {', '.join(WAREHOUSES)}"
            )
        # Derived paths default inside data_dir so one variable moves everything.
        if self.landing_dir is None:
            object.__setattr__(self, "landing_dir", self.data_dir / "landing")
        if self.duckdb_path is None:
            object.__setattr__(self, "duckdb_path", self.data_dir / "warehouse.duckdb")
        if self.previews_dir is None:
            object.__setattr__(self, "previews_dir", self.data_dir / "previews")

    def reference_time(self) -> datetime:
        """Naive UTC instant that time-window rules look back from: midnight of as_of, else now."""
        if self.as_of:
            return datetime.combine(date.fromisoformat(self.as_of[:10]), time.min)
        return datetime.now(timezone.utc).replace(tzinfo=None)

    @property
    def dbt_target(self) -> str:
        return self.warehouse

    def dbt_environment(self) -> dict[str, str]:
        """Variables dbt/profiles.yml reads, so a dbt run sees the same warehouse as Python."""
        return {
            "MAILROOM_WAREHOUSE": self.warehouse,
            "MAILROOM_DUCKDB_PATH": str(self.duckdb_path),
            # Empty, so profiles.yml takes the decoded PG* values below rather than re-parsing a URL.
            "MAILROOM_PG_URL": "",
            "MAILROOM_AS_OF": self.as_of,
            **self.postgres.libpq_environment,
        }


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("MAILROOM_DATA_DIR") or project_root() / "data").resolve()
    landing = env.get("MAILROOM_LANDING_DIR")
    duckdb_path = env.get("MAILROOM_DUCKDB_PATH")
    previews = env.get("MAILROOM_PREVIEWS_DIR")
    return Settings(
        warehouse=(env.get("MAILROOM_WAREHOUSE") or "duckdb").strip().lower(),
        data_dir=data_dir,
        landing_dir=Path(landing).resolve() if landing else None,
        duckdb_path=Path(duckdb_path).resolve() if duckdb_path else None,
        postgres=_postgres_from_environment(env),
        phone_default_region=_phone_region(env.get("MAILROOM_PHONE_DEFAULT_REGION") or "US"),
        as_of=_as_of(env.get("MAILROOM_AS_OF") or ""),
        expectations_dir=Path(env.get("MAILROOM_EXPECTATIONS_DIR") or project_root() / "expectations").resolve(),
        previews_dir=Path(previews).resolve() if previews else None,
        audit_anchor_file=Path(anchors).resolve() if (anchors := env.get("MAILROOM_AUDIT_ANCHOR_FILE")) else None,
    )


def _as_of(value: str) -> str:
    if value:
        try:
            date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise SettingsError(f"MAILROOM_AS_OF={value!r} is not a date; use YYYY-MM-DD or leave it unset") from None
    return value.strip()


def _phone_region(region: str) -> str:
    import phonenumbers

    region = region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(
            f"MAILROOM_PHONE_DEFAULT_REGION={region!r} is not a region libphonenumber knows; "
            "use an ISO 3166-1 alpha-2 code such as US, GB or DE"
        )
    return region


def postgres_password(environ: dict[str, str] | None = None) -> str:
    """The PostgreSQL password, read when a connection is made, so that it never sits in Dagster
    resource config (which the UI shows)."""
    return _postgres_from_environment(os.environ if environ is None else environ).password


def _postgres_from_environment(env) -> PostgresTarget:
    if env.get("MAILROOM_PG_URL"):
        return parse_postgres_url(env["MAILROOM_PG_URL"])
    port = env.get("PGPORT", "5432")
    if not port.isdigit():
        raise SettingsError(f"PGPORT={port!r} is not a port number; set it to e.g. 5432")
    return PostgresTarget(
        host=env.get("PGHOST", "127.0.0.1"),
        port=int(port),
        user=env.get("PGUSER", "postgres"),
        password=env.get("PGPASSWORD", ""),
        dbname=env.get("PGDATABASE", "mailroom"),
    )


INGEST_SOURCES = ("cdp", "crm", "consent", "catalog", "esp")
CHECK_SEVERITIES = ("warn", "error")


@dataclass(frozen=True)
class IngestSettings:
    """How landing files are read: limits for hostile input, encodings, and what happens after."""

    max_line_bytes: int = 4 << 20  # a longer line or CSV field is quarantined
    max_depth: int = 64  # deeper JSON nesting is quarantined
    # Per source with CSV files (crm, catalog): the export's encoding when it is not UTF-8.
    encodings: dict[str, str] = field(default_factory=dict)
    archive_dir: Path | None = None  # loaded files move here; None: they stay in the landing directory
    # A rejected landing file fails the ingest asset's check with this severity ("error" blocks downstream).
    rejected_file_severity: str = "warn"


def load_ingest_settings(environ: dict[str, str] | None = None) -> IngestSettings:
    import codecs

    env = os.environ if environ is None else environ
    encodings = {}
    for source in INGEST_SOURCES:
        name = f"MAILROOM_INGEST_ENCODING_{source.upper()}"
        if value := (env.get(name) or "").strip():
            try:
                encodings[source] = codecs.lookup(value).name
            except LookupError:
                raise SettingsError(f"{name}={value!r} is not an encoding Python knows; "
                                    "use e.g. utf-8, latin-1 or cp1252") from None
            # Lines are split on the newline byte before decoding: only ASCII-compatible encodings work.
            if '"a,1"\n'.encode(encodings[source], "replace") != b'"a,1"\n':
                raise SettingsError(f"{name}={value!r} is not ASCII-compatible (UTF-16 or UTF-32?); convert the export "
                                    "to UTF-8, e.g. iconv -f UTF-16 -t UTF-8")
    severity = (env.get("MAILROOM_INGEST_REJECTED_FILE_SEVERITY") or "warn").strip().lower()
    if severity not in CHECK_SEVERITIES:
        raise SettingsError(f"MAILROOM_INGEST_REJECTED_FILE_SEVERITY={severity!r} must be warn or error")
    line_bytes = int(_number(env, "MAILROOM_INGEST_MAX_LINE_BYTES", IngestSettings.max_line_bytes))
    if line_bytes < 1024:
        raise SettingsError(f"MAILROOM_INGEST_MAX_LINE_BYTES={line_bytes} is too small; "
                            "use at least 1024 (default 4 MiB)")
    archive = env.get("MAILROOM_INGEST_ARCHIVE_DIR")
    return IngestSettings(
        max_line_bytes=line_bytes,
        max_depth=max(2, int(_number(env, "MAILROOM_INGEST_MAX_JSON_DEPTH", IngestSettings.max_depth))),
        encodings=encodings,
        archive_dir=Path(archive).resolve() if archive else None,
        rejected_file_severity=severity,
    )


@dataclass(frozen=True)
class LlmTarget:
    """An OpenAI-compatible endpoint, without its key (read when a call is made, see llm_api_key)."""

    name: str  # "openai" (primary) or "secondary"
    base_url: str | None
    model: str
    input_usd_per_million: float
    output_usd_per_million: float
    timeout_seconds: float


@dataclass(frozen=True)
class PersonalizationSettings:
    content_dir: Path = field(default_factory=lambda: project_root() / "content")
    primary: LlmTarget | None = None  # None: no API key, the rule-based writer writes everything
    secondary: LlmTarget | None = None
    daily_budget_usd: float = 1.0
    unsubscribe_url: str = "http://127.0.0.1:8025/unsubscribe"
    sender_domain: str = "mail.example.com"


LLM_KEY_VARIABLES = {"openai": ("MAILROOM_LLM_API_KEY", "OPENAI_API_KEY"),
                     "secondary": ("MAILROOM_LLM_SECONDARY_API_KEY",)}


def load_personalization_settings(environ: dict[str, str] | None = None) -> PersonalizationSettings:
    env = os.environ if environ is None else environ
    prices = (_number(env, "MAILROOM_LLM_INPUT_USD_PER_MILLION", 0.15),
              _number(env, "MAILROOM_LLM_OUTPUT_USD_PER_MILLION", 0.60))
    timeout = _number(env, "MAILROOM_LLM_TIMEOUT_SECONDS", 20.0)
    primary = secondary = None
    if llm_api_key("openai", env):
        primary = LlmTarget("openai", env.get("MAILROOM_LLM_BASE_URL") or None,
                            env.get("MAILROOM_LLM_MODEL") or "gpt-4o-mini", *prices, timeout)
    if env.get("MAILROOM_LLM_SECONDARY_BASE_URL"):
        if not llm_api_key("secondary", env):
            raise SettingsError(
                "MAILROOM_LLM_SECONDARY_BASE_URL is set but MAILROOM_LLM_SECONDARY_API_KEY is not; set both or neither"
            )
        secondary = LlmTarget("secondary", env["MAILROOM_LLM_SECONDARY_BASE_URL"],
                              env.get("MAILROOM_LLM_SECONDARY_MODEL") or "gpt-4o-mini", *prices, timeout)
    return PersonalizationSettings(
        content_dir=Path(env.get("MAILROOM_CONTENT_DIR") or project_root() / "content").resolve(),
        primary=primary,
        secondary=secondary,
        daily_budget_usd=_number(env, "MAILROOM_LLM_DAILY_BUDGET_USD", 1.0),
        unsubscribe_url=env.get("MAILROOM_UNSUBSCRIBE_URL") or PersonalizationSettings.unsubscribe_url,
        sender_domain=env.get("MAILROOM_SENDER_DOMAIN") or PersonalizationSettings.sender_domain,
    )


def llm_api_key(endpoint: str, environ: dict[str, str] | None = None) -> str:
    """The API key of an LLM endpoint, read when it is used so it never sits in resource config."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in LLM_KEY_VARIABLES[endpoint] if env.get(name)), "")


UNSUBSCRIBE_SECRET_VARIABLE = "MAILROOM_UNSUBSCRIBE_SECRET"
MIN_SECRET_BYTES = 32
_GENERATE_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def unsubscribe_secret(data_dir: Path, environ: dict[str, str] | None = None) -> bytes:
    """The key of unsubscribe tokens, Message-IDs and provider ids: MAILROOM_UNSUBSCRIBE_SECRET, else
    (`make demo`, tests) a random key created once in the data directory, so links work out of the box
    and stay valid across runs. The receiver never falls back to the file: see receiver_unsubscribe_secret."""
    configured = _configured_unsubscribe_secret(os.environ if environ is None else environ)
    if configured:
        return configured
    from dagster_project.key_files import KeyFileError, read_or_create_key

    try:
        return read_or_create_key(data_dir / ".unsubscribe_secret", MIN_SECRET_BYTES)
    except KeyFileError as error:
        raise SettingsError(f"{error}; or set {UNSUBSCRIBE_SECRET_VARIABLE}") from None


PRIVACY_KEY_VARIABLE = "MAILROOM_PRIVACY_KEY"
PRIVACY_DEADLINE_VARIABLE = "MAILROOM_PRIVACY_DEADLINE_DAYS"


def privacy_key(data_dir: Path, environ: dict[str, str] | None = None) -> bytes:
    """The key of the keyed hashes that stand for a person in privacy records and the audit chain:
    MAILROOM_PRIVACY_KEY, else a random key created once in the data directory. It is not the unsubscribe
    secret: rotating that one must never change who an erasure proof matches. Back it up with the warehouse."""
    env = os.environ if environ is None else environ
    value = env.get(PRIVACY_KEY_VARIABLE) or ""
    if value:
        if len(value.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(f"{PRIVACY_KEY_VARIABLE} is {len(value.encode())} bytes long; use at least "
                                f"{MIN_SECRET_BYTES} random bytes, e.g. generated with {_GENERATE_SECRET}")
        return value.encode()
    from dagster_project.key_files import KeyFileError, read_or_create_key

    try:
        return read_or_create_key(data_dir / ".privacy_key", MIN_SECRET_BYTES)
    except KeyFileError as error:
        raise SettingsError(f"{error}; or set {PRIVACY_KEY_VARIABLE}") from None


def privacy_cron(environ: dict[str, str] | None = None) -> str:
    """When the privacy_requests job works through requests (MAILROOM_PRIVACY_CRON, UTC)."""
    env = os.environ if environ is None else environ
    value = (env.get("MAILROOM_PRIVACY_CRON") or "0 2 * * *").strip()
    if len(value.split()) != 5:
        raise SettingsError(f"MAILROOM_PRIVACY_CRON={value!r} must be a cron expression of five fields, e.g. 0 2 * * *")
    return value


def privacy_export_dir(data_dir: Path, environ: dict[str, str] | None = None) -> Path:
    """Where access exports are written, one folder per request (MAILROOM_PRIVACY_EXPORT_DIR)."""
    env = os.environ if environ is None else environ
    value = (env.get("MAILROOM_PRIVACY_EXPORT_DIR") or "").strip()
    return Path(value).resolve() if value else Path(data_dir) / "privacy" / "exports"


def privacy_deadline_days(environ: dict[str, str] | None = None) -> int:
    """Days to answer a privacy request (GDPR: one month)."""
    env = os.environ if environ is None else environ
    raw = (env.get(PRIVACY_DEADLINE_VARIABLE) or "30").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 90:
        raise SettingsError(f"{PRIVACY_DEADLINE_VARIABLE}={raw!r} must be a whole number of days from 1 to 90")
    return int(raw)


def receiver_unsubscribe_secret(data_dir: Path, environ: dict[str, str] | None = None) -> bytes:
    """The receiver's key: only an explicit MAILROOM_UNSUBSCRIBE_SECRET. A service on the internet
    must not quietly invent a key that matches no link the pipeline rendered."""
    configured = _configured_unsubscribe_secret(os.environ if environ is None else environ)
    if not configured:
        raise SettingsError(
            f"{UNSUBSCRIBE_SECRET_VARIABLE} is not set: the receiver needs the secret the pipeline signs "
            f"unsubscribe links with, at least {MIN_SECRET_BYTES} bytes. Generate one with {_GENERATE_SECRET} "
            "and set it for the pipeline and the receiver alike; to try the receiver with the links `make demo` "
            f"rendered, use the demo's key: export {UNSUBSCRIBE_SECRET_VARIABLE}="
            f"\"$(cat {data_dir / '.unsubscribe_secret'})\""
        )
    return configured


def _configured_unsubscribe_secret(env) -> bytes:
    value = env.get(UNSUBSCRIBE_SECRET_VARIABLE) or ""
    if value and len(value.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"{UNSUBSCRIBE_SECRET_VARIABLE} is {len(value.encode())} bytes long; use at least {MIN_SECRET_BYTES} "
            f"random bytes, e.g. generated with {_GENERATE_SECRET}"
        )
    return value.encode()


def _number(env, name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a number") from None
    if number < 0:
        raise SettingsError(f"{name}={value!r} must not be negative")
    return number


DESTINATIONS = ("outbox", "sendgrid", "smtp")


@dataclass(frozen=True)
class SmtpTarget:
    """Where the SMTP destination connects; the password is read when it connects (smtp_password)."""

    host: str = "127.0.0.1"
    port: int = 587
    username: str = ""
    security: str = "starttls"  # "starttls", "ssl" (implicit TLS, smtps://) or "none"


@dataclass(frozen=True)
class ActivationSettings:
    # Failover chain, first choice first: a destination whose circuit breaker opens hands over to the next.
    destinations: tuple[str, ...] = ("outbox",)
    from_email: str = "news@mail.example.com"
    from_name: str = "Mailroom"
    outbox_dir: Path = field(default_factory=lambda: project_root() / "data" / "outbox")
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_unsubscribe_group_id: int | None = None
    sendgrid_batch_size: int = 1000  # personalizations per request; SendGrid allows at most 1,000
    smtp: SmtpTarget = field(default_factory=SmtpTarget)
    # Requests per second per destination (a SendGrid request carries up to a batch); 0 = unlimited.
    rate_per_second: dict[str, float] = field(default_factory=lambda: {"sendgrid": 10.0, "smtp": 50.0, "outbox": 0.0})
    timeout_seconds: float = 30.0
    max_attempts: int = 5  # per batch and destination
    backoff_seconds: float = 1.0  # first retry waits up to this long, doubling each attempt (with jitter)
    breaker_failures: int = 5  # consecutive failures that open a destination's circuit breaker
    breaker_reset_seconds: float = 60.0
    frequency_cap: int = 3  # messages per customer per 7 days, across campaigns; 0 = no cap
    quiet_hours: tuple[int, int] | None = (21, 8)  # local [start, end) hours nothing is delivered in
    reconcile_after_minutes: float = 30.0  # wait this long for provider events before unknown_outcome decides
    expire_after_hours: float = 48.0  # a message not handed over this long after its send time expires
    # A send run holds the rows it works on for this long, renewed while it lives; rows of a run that
    # died are reconciled once it has run out. Longer than any one request, backoff or breaker wait.
    lease_seconds: float = 600.0
    # What happens to a SendGrid message whose outcome stayed unknown (no event within the reconcile
    # window): hold it for an operator, cancel its scheduled batch and send it again, or resend it.
    unknown_outcome: str = "hold"
    # cancel_and_resend only: every SendGrid message is scheduled at least this far ahead.
    sendgrid_cancel_margin_minutes: float = 40.0
    duckdb_wait_seconds: float = 300.0  # how long a send waits for another process to release the DuckDB file


UNKNOWN_OUTCOMES = ("hold", "cancel_and_resend", "resend")


def load_activation_settings(environ: dict[str, str] | None = None) -> ActivationSettings:
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("MAILROOM_DATA_DIR") or project_root() / "data").resolve()
    defaults = ActivationSettings()
    chain = tuple(name.strip().lower() for name in (env.get("MAILROOM_DESTINATIONS") or "outbox").split(",")
                  if name.strip())
    unknown = [name for name in chain if name not in DESTINATIONS]
    if unknown or not chain or len(set(chain)) != len(chain):
        raise SettingsError(
            f"MAILROOM_DESTINATIONS={env.get('MAILROOM_DESTINATIONS')!r} must list each of {', '.join(DESTINATIONS)} "
            "at most once, first choice first, e.g. 'sendgrid,smtp'"
        )
    if "sendgrid" in chain and not sendgrid_api_key(env):
        raise SettingsError("MAILROOM_DESTINATIONS includes sendgrid but MAILROOM_SENDGRID_API_KEY "
                            "(or SENDGRID_API_KEY) is not set")
    if "smtp" in chain and not env.get("MAILROOM_SMTP_URL"):
        raise SettingsError("MAILROOM_DESTINATIONS includes smtp but MAILROOM_SMTP_URL is not set; "
                            "use e.g. smtp://user:password@smtp.example.com:587")
    sender_domain = env.get("MAILROOM_SENDER_DOMAIN") or PersonalizationSettings.sender_domain
    batch = int(_number(env, "MAILROOM_SENDGRID_BATCH_SIZE", defaults.sendgrid_batch_size))
    if not 1 <= batch <= 1000:
        raise SettingsError(f"MAILROOM_SENDGRID_BATCH_SIZE={batch} must be between 1 and 1000 (SendGrid's limit)")
    group = env.get("MAILROOM_SENDGRID_UNSUBSCRIBE_GROUP_ID")
    if group and not group.strip().isdigit():
        raise SettingsError(f"MAILROOM_SENDGRID_UNSUBSCRIBE_GROUP_ID={group!r} must be the numeric id of the group")
    return ActivationSettings(
        destinations=chain,
        from_email=env.get("MAILROOM_FROM_EMAIL") or f"news@{sender_domain}",
        from_name=env.get("MAILROOM_FROM_NAME") or defaults.from_name,
        outbox_dir=Path(env.get("MAILROOM_OUTBOX_DIR") or data_dir / "outbox").resolve(),
        sendgrid_host=(env.get("MAILROOM_SENDGRID_HOST") or defaults.sendgrid_host).rstrip("/"),
        sendgrid_unsubscribe_group_id=int(group) if group else None,
        sendgrid_batch_size=batch,
        smtp=_smtp_target(env.get("MAILROOM_SMTP_URL") or ""),
        rate_per_second={name: _number(env, f"MAILROOM_{name.upper()}_RATE_PER_SECOND", rate)
                         for name, rate in defaults.rate_per_second.items()},
        timeout_seconds=_number(env, "MAILROOM_SEND_TIMEOUT_SECONDS", defaults.timeout_seconds),
        max_attempts=max(1, int(_number(env, "MAILROOM_SEND_MAX_ATTEMPTS", defaults.max_attempts))),
        backoff_seconds=_number(env, "MAILROOM_SEND_BACKOFF_SECONDS", defaults.backoff_seconds),
        breaker_failures=max(1, int(_number(env, "MAILROOM_CIRCUIT_BREAKER_FAILURES", defaults.breaker_failures))),
        breaker_reset_seconds=_number(env, "MAILROOM_CIRCUIT_BREAKER_RESET_SECONDS", defaults.breaker_reset_seconds),
        frequency_cap=int(_number(env, "MAILROOM_FREQUENCY_CAP_PER_7_DAYS", defaults.frequency_cap)),
        quiet_hours=load_quiet_hours(env),
        reconcile_after_minutes=_number(env, "MAILROOM_RECONCILE_AFTER_MINUTES", defaults.reconcile_after_minutes),
        expire_after_hours=_number(env, "MAILROOM_SEND_EXPIRY_HOURS", defaults.expire_after_hours),
        **_ownership(env, defaults),
    )


def _ownership(env, defaults: ActivationSettings) -> dict:
    """Leases and the unknown-outcome policy, checked against each other."""
    lease = _number(env, "MAILROOM_SEND_LEASE_SECONDS", defaults.lease_seconds)
    if lease < 1:
        raise SettingsError(f"MAILROOM_SEND_LEASE_SECONDS={lease:g} must be at least 1")
    policy = (env.get("MAILROOM_UNKNOWN_OUTCOME") or defaults.unknown_outcome).strip().lower().replace("-", "_")
    if policy not in UNKNOWN_OUTCOMES:
        raise SettingsError(f"MAILROOM_UNKNOWN_OUTCOME={policy!r} must be one of {', '.join(UNKNOWN_OUTCOMES)}")
    margin = _number(env, "MAILROOM_SENDGRID_CANCEL_MARGIN_MINUTES", defaults.sendgrid_cancel_margin_minutes)
    # A recovering run can only start once the dead run's lease has run out, and SendGrid cannot cancel
    # later than 10 minutes before send_at: the margin must leave room for both, and for the next run.
    if policy == "cancel_and_resend" and margin * 60 <= lease + 600:
        raise SettingsError(
            f"MAILROOM_SENDGRID_CANCEL_MARGIN_MINUTES={margin:g} is too short for cancel_and_resend: it must exceed "
            f"the lease (MAILROOM_SEND_LEASE_SECONDS={lease:g}) plus SendGrid's 10 minutes, plus the time until the "
            "next send run"
        )
    return {"lease_seconds": lease, "unknown_outcome": policy, "sendgrid_cancel_margin_minutes": margin,
            "duckdb_wait_seconds": _number(env, "MAILROOM_DUCKDB_WAIT_SECONDS", defaults.duckdb_wait_seconds)}


def sendgrid_api_key(environ: dict[str, str] | None = None) -> str:
    """Read when a request is made, so the key never sits in resource config."""
    env = os.environ if environ is None else environ
    return env.get("MAILROOM_SENDGRID_API_KEY") or env.get("SENDGRID_API_KEY") or ""


def smtp_password(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return unquote(urlsplit(env.get("MAILROOM_SMTP_URL") or "").password or "")


def _smtp_target(url: str) -> SmtpTarget:
    if not url:
        return SmtpTarget()
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError(f"MAILROOM_SMTP_URL={parts._replace(netloc=parts.hostname or '').geturl()!r} "
                            "is not an SMTP URL; "
                            "use smtp://user:password@host:587 (STARTTLS) or smtps://...:465 (implicit TLS)")
    security = "ssl" if parts.scheme == "smtps" else "starttls"
    if "tls=none" in parts.query:  # a relay on localhost or in a private network
        security = "none"
    return SmtpTarget(host=parts.hostname, port=parts.port or (465 if security == "ssl" else 587),
                      username=unquote(parts.username or ""), security=security)


def load_quiet_hours(environ: dict[str, str] | None = None) -> tuple[int, int] | None:
    """MAILROOM_QUIET_HOURS alone: campaigns with optimized send times plan around it."""
    env = os.environ if environ is None else environ
    return _quiet_hours(env.get("MAILROOM_QUIET_HOURS", "21-8"))


def _quiet_hours(value: str) -> tuple[int, int] | None:
    value = value.strip().lower()
    if value in ("", "off", "none"):
        return None
    start, sep, end = value.partition("-")
    if not (sep and start.strip().isdigit() and end.strip().isdigit()
            and 0 <= int(start) <= 23 and 0 <= int(end) <= 23 and int(start) != int(end)):
        raise SettingsError(f"MAILROOM_QUIET_HOURS={value!r} must be START-END in local hours, e.g. 21-8, or 'off'")
    return int(start), int(end)


@dataclass(frozen=True)
class GuardSettings:
    """Deliverability guards (dagster_project/analytics/guards.py) on each campaign's latest run: a
    (warn, error) pair per guard; crossing error pauses the campaign's sends."""

    hard_bounce_rate: tuple[float, float] = (0.02, 0.05)  # hard bounces per send
    # Spam complaints per delivery: Gmail and Yahoo require bulk senders to stay under 0.3%, and ask for 0.1%.
    spam_rate: tuple[float, float] = (0.001, 0.003)
    unsubscribe_spike: tuple[float, float] = (2.0, 3.0)  # x the median unsubscribe rate of the campaign's earlier runs
    # Below this many sends (deliveries, for the per-delivery rates) one complaint more or less swings a
    # rate past any threshold: the guard does not judge. Earlier runs below it are not history either.
    min_sends: int = 500


def load_guard_settings(environ: dict[str, str] | None = None) -> GuardSettings:
    env = os.environ if environ is None else environ
    defaults = GuardSettings()
    min_sends = _number(env, "MAILROOM_GUARD_MIN_SENDS", defaults.min_sends)
    if min_sends < 1 or min_sends != int(min_sends):
        raise SettingsError(f"MAILROOM_GUARD_MIN_SENDS={env.get('MAILROOM_GUARD_MIN_SENDS')!r} must be a whole "
                            "number of sends, at least 1")
    return GuardSettings(
        hard_bounce_rate=_thresholds(env, "MAILROOM_GUARD_HARD_BOUNCE_RATE", defaults.hard_bounce_rate, rate=True),
        spam_rate=_thresholds(env, "MAILROOM_GUARD_SPAM_RATE", defaults.spam_rate, rate=True),
        unsubscribe_spike=_thresholds(env, "MAILROOM_GUARD_UNSUBSCRIBE_SPIKE", defaults.unsubscribe_spike, rate=False),
        min_sends=int(min_sends),
    )


def _thresholds(env, name: str, default: tuple[float, float], rate: bool) -> tuple[float, float]:
    """WARN,ERROR: fractions between 0 and 1 for a rate (0.003 is 0.3%), multiples of at least 1 otherwise."""
    value = (env.get(name) or "").strip()
    if not value:
        return default
    example = f"e.g. {default[0]:g},{default[1]:g}"
    kind = "fractions between 0 and 1 (0.003 is 0.3%)" if rate else "multiples of at least 1"
    try:
        warn, error = (float(part) for part in value.split(","))
    except ValueError:
        raise SettingsError(f"{name}={value!r} must be two numbers WARN,ERROR, {kind}, {example}") from None
    if not (warn <= error and (0 < warn and error <= 1 if rate else warn >= 1)):
        raise SettingsError(f"{name}={value!r} must be WARN,ERROR with WARN <= ERROR, {kind}, {example}")
    return warn, error


@dataclass(frozen=True)
class ReceiverSettings:
    """The webhook and unsubscribe receiver (python -m reverse_etl.receiver)."""

    host: str = "127.0.0.1"
    port: int = 8025
    # SendGrid's Event Webhook verification key as SendGrid shows it (base64 DER, or PEM); empty = the
    # webhook endpoint refuses every request (401) until it is set.
    sendgrid_public_key: str = ""
    max_age_seconds: float = 300.0  # older signed timestamps are replays (401)
    max_body_bytes: int = 5 * 1024 * 1024
    # Requests in progress at once; more get 503 with Retry-After (SendGrid retries), so a flood cannot
    # pile up threads, open files and memory.
    max_concurrent_requests: int = 32
    # A repeated opt-out for the same campaign and address within this window writes nothing new (double
    # clicks, mail scanners). A later one is written again: the person may have re-subscribed meanwhile.
    opt_out_repeat_window_seconds: float = 3600.0
    # Serve the campaign previews at /preview/ (to clients on this machine only). None: serve them when
    # the receiver listens on a loopback address, as on a laptop; a receiver that faces the internet,
    # or a proxy on its host, serves them only with MAILROOM_RECEIVER_PREVIEWS=on.
    serve_previews: bool | None = None

    @property
    def previews_served(self) -> bool:
        if self.serve_previews is not None:
            return self.serve_previews
        return self.host in ("localhost", "127.0.0.1", "::1") or self.host.startswith("127.")


def load_receiver_settings(environ: dict[str, str] | None = None) -> ReceiverSettings:
    env = os.environ if environ is None else environ
    port = env.get("MAILROOM_RECEIVER_PORT", "8025")
    if not port.isdigit():
        raise SettingsError(f"MAILROOM_RECEIVER_PORT={port!r} is not a port number")
    return ReceiverSettings(
        host=env.get("MAILROOM_RECEIVER_HOST") or ReceiverSettings.host,
        port=int(port),
        sendgrid_public_key=(env.get("MAILROOM_SENDGRID_WEBHOOK_PUBLIC_KEY") or "").strip(),
        max_age_seconds=_number(env, "MAILROOM_WEBHOOK_MAX_AGE_SECONDS", ReceiverSettings.max_age_seconds),
        max_concurrent_requests=max(1, int(_number(env, "MAILROOM_RECEIVER_MAX_CONCURRENT_REQUESTS",
                                                   ReceiverSettings.max_concurrent_requests))),
        serve_previews=_on_off(env, "MAILROOM_RECEIVER_PREVIEWS"),
    )


def _on_off(env, name: str) -> bool | None:
    """An on/off switch: None when unset (the default applies)."""
    value = (env.get(name) or "").strip().lower()
    if not value:
        return None
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise SettingsError(f"{name}={env.get(name)!r} is not a switch; use on or off")


SYNC_DESTINATIONS = ("database", "hubspot")
SYNC_MODES = ("upsert", "update_only")
CRM_BATCH_LIMITS = {"database": 1000, "hubspot": 100}  # rows per write each destination takes


@dataclass(frozen=True)
class SyncSettings:
    """Reverse ETL of sync_crm__* models to the CRM."""

    destination: str = "database"  # the embedded default: a table in any SQLAlchemy database
    mode: str = "upsert"  # or update_only: never create contacts the CRM does not have
    # default: sqlite file crm.sqlite in the data directory; may hold a password, so never in a repr
    database_url: str = field(default="", repr=False)
    database_table: str = "crm_contacts"
    hubspot_host: str = "https://api.hubapi.com"
    hubspot_id_property: str = "email"  # the unique contact property upserts are keyed by
    # Rows per batch; 0: the destination's largest (HubSpot's batch upsert takes 100, the database 1,000).
    batch_size: int = 0
    rate_per_second: float = 10.0  # requests per second
    max_attempts: int = 5


def load_sync_settings(environ: dict[str, str] | None = None) -> SyncSettings:
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("MAILROOM_DATA_DIR") or project_root() / "data").resolve()
    destination = (env.get("MAILROOM_CRM_DESTINATION") or "database").strip().lower()
    if destination not in SYNC_DESTINATIONS:
        raise SettingsError(f"MAILROOM_CRM_DESTINATION={destination!r} must be one of {', '.join(SYNC_DESTINATIONS)}")
    mode = (env.get("MAILROOM_CRM_SYNC_MODE") or "upsert").strip().lower().replace("-", "_")
    if mode not in SYNC_MODES:
        raise SettingsError(f"MAILROOM_CRM_SYNC_MODE={mode!r} must be one of {', '.join(SYNC_MODES)}")
    if destination == "hubspot" and not hubspot_access_token(env):
        raise SettingsError("MAILROOM_CRM_DESTINATION=hubspot needs MAILROOM_HUBSPOT_ACCESS_TOKEN "
                            "(a private app token)")
    batch = int(_number(env, "MAILROOM_CRM_BATCH_SIZE", SyncSettings.batch_size))
    largest = CRM_BATCH_LIMITS[destination]
    if not 0 <= batch <= largest:
        raise SettingsError(f"MAILROOM_CRM_BATCH_SIZE={batch} must be between 1 and {largest} ({destination}'s "
                            "batch limit), or 0 for the largest")
    return SyncSettings(
        destination=destination,
        mode=mode,
        database_url=_crm_database_url(env.get("MAILROOM_CRM_DATABASE_URL") or f"sqlite:///{data_dir / 'crm.sqlite'}"),
        database_table=env.get("MAILROOM_CRM_DATABASE_TABLE") or SyncSettings.database_table,
        hubspot_host=(env.get("MAILROOM_HUBSPOT_HOST") or SyncSettings.hubspot_host).rstrip("/"),
        hubspot_id_property=env.get("MAILROOM_HUBSPOT_ID_PROPERTY") or SyncSettings.hubspot_id_property,
        batch_size=batch,
        rate_per_second=_number(env, "MAILROOM_CRM_RATE_PER_SECOND", SyncSettings.rate_per_second),
        max_attempts=max(1, int(_number(env, "MAILROOM_CRM_MAX_ATTEMPTS", SyncSettings.max_attempts))),
    )


def _crm_database_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from dagster_project.redaction import redact_url

    try:
        make_url(url)
    except (ArgumentError, ValueError):
        # The URL is printed redacted: it may hold a password, and this is exactly when it did not parse.
        raise SettingsError(
            f"MAILROOM_CRM_DATABASE_URL={redact_url(url)!r} is not a database URL SQLAlchemy understands; use e.g. "
            "postgresql://user:password@host:5432/crm or sqlite:////absolute/path/crm.sqlite"
        ) from None
    return url


def crm_database_password(for_url: str, environ: dict[str, str] | None = None) -> str:
    """The password of MAILROOM_CRM_DATABASE_URL, read when the CRM database is connected to, so it
    never sits in Dagster resource config (which the UI shows). Only for the URL it was given with
    (`for_url` is that URL without its password): a URL changed in run config never receives it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    env = os.environ if environ is None else environ
    try:
        configured = make_url(env.get("MAILROOM_CRM_DATABASE_URL") or "")
        wanted = make_url(for_url)
    except (ArgumentError, ValueError):
        return ""
    if configured.password is None or _without_password(configured) != _without_password(wanted):
        return ""
    return str(configured.password)


def _without_password(url):
    return url._replace(password=None)  # URL.set(password=None) would keep it: None means "unchanged"


def hubspot_access_token(environ: dict[str, str] | None = None) -> str:
    """Read when a request is made, so the token never sits in resource config."""
    env = os.environ if environ is None else environ
    return env.get("MAILROOM_HUBSPOT_ACCESS_TOKEN") or ""
