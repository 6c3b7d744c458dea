"""The destination chain from ActivationSettings: destinations in failover order, each with its
token bucket and circuit breaker, plus what the reconciler may ask about earlier runs (the outbox
whether a file is there; SendGrid, with cancel_and_resend, to cancel a batch)."""

from __future__ import annotations

from datetime import timedelta

from dagster_project.settings import ActivationSettings, sendgrid_api_key, smtp_password
from reverse_etl.destinations.outbox import OutboxDestination
from reverse_etl.destinations.sendgrid import SendGridDestination
from reverse_etl.destinations.smtp import SmtpDestination
from reverse_etl.sender import DryRunDestination, Route, SendPolicy
from reverse_etl.throttle import CircuitBreaker, TokenBucket


def build_destination(name: str, settings: ActivationSettings):
    if name == "outbox":
        return OutboxDestination(settings.outbox_dir, settings.from_email, settings.from_name)
    if name == "sendgrid":
        cancellable = settings.unknown_outcome == "cancel_and_resend"
        return SendGridDestination(settings.sendgrid_host, sendgrid_api_key, settings.from_email, settings.from_name,
                                   unsubscribe_group_id=settings.sendgrid_unsubscribe_group_id,
                                   batch_size=settings.sendgrid_batch_size, timeout_seconds=settings.timeout_seconds,
                                   cancel_margin=timedelta(minutes=settings.sendgrid_cancel_margin_minutes)
                                   if cancellable else None)
    if name == "smtp":
        return SmtpDestination(settings.smtp, smtp_password, settings.from_email, settings.from_name,
                               timeout_seconds=settings.timeout_seconds)
    raise ValueError(f"unknown destination {name!r}")


def build_routes(settings: ActivationSettings, dry_run: bool = False) -> list[Route]:
    routes = []
    for name in settings.destinations:
        destination = build_destination(name, settings)
        rate = settings.rate_per_second.get(name, 0.0)
        routes.append(Route(
            destination=DryRunDestination(destination) if dry_run else destination,
            bucket=TokenBucket(rate),
            breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds),
        ))
    return routes


def build_finders(settings: ActivationSettings, dry_run: bool = False) -> dict:
    """Destinations reconcile may ask: the outbox ("is the file there?") always; SendGrid, to cancel a
    batch, when the policy is cancel_and_resend and an API key is set (never in a dry run)."""
    finders = {"outbox": OutboxDestination(settings.outbox_dir, settings.from_email, settings.from_name)}
    if settings.unknown_outcome == "cancel_and_resend" and sendgrid_api_key() and not dry_run:
        finders["sendgrid"] = build_destination("sendgrid", settings)
    return finders


def send_policy(settings: ActivationSettings) -> SendPolicy:
    return SendPolicy(
        frequency_cap=settings.frequency_cap,
        quiet_hours=settings.quiet_hours,
        expire_after=timedelta(hours=settings.expire_after_hours),
        reconcile_after=timedelta(minutes=settings.reconcile_after_minutes),
        max_attempts=settings.max_attempts,
        lease=timedelta(seconds=settings.lease_seconds),
        unknown_outcome=settings.unknown_outcome,
        warehouse_wait_seconds=settings.duckdb_wait_seconds,
    )
