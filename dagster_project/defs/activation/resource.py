"""The activation resource: the destination chain and sending policy from ActivationSettings.
The SendGrid key and the SMTP password are read when a destination connects, never stored here."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dagster_project.settings import ActivationSettings, SmtpTarget


class ActivationResource(dg.ConfigurableResource):
    destinations: list[str] = ["outbox"]  # failover order
    from_email: str
    from_name: str
    outbox_dir: str
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_unsubscribe_group_id: int | None = None
    sendgrid_batch_size: int = 1000
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_security: str = "starttls"
    rate_per_second: dict[str, float] = {}
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    breaker_failures: int = 5
    breaker_reset_seconds: float = 60.0
    frequency_cap: int = 3
    quiet_hours: list[int] = [21, 8]  # empty: off
    reconcile_after_minutes: float = 30.0
    expire_after_hours: float = 48.0
    lease_seconds: float = 600.0
    unknown_outcome: str = "hold"  # hold, cancel_and_resend or resend
    sendgrid_cancel_margin_minutes: float = 40.0
    duckdb_wait_seconds: float = 300.0

    @classmethod
    def from_settings(cls, settings: ActivationSettings) -> "ActivationResource":
        return cls(
            destinations=list(settings.destinations), from_email=settings.from_email, from_name=settings.from_name,
            outbox_dir=str(settings.outbox_dir), sendgrid_host=settings.sendgrid_host,
            sendgrid_unsubscribe_group_id=settings.sendgrid_unsubscribe_group_id,
            sendgrid_batch_size=settings.sendgrid_batch_size, smtp_host=settings.smtp.host,
            smtp_port=settings.smtp.port, smtp_username=settings.smtp.username, smtp_security=settings.smtp.security,
            rate_per_second=dict(settings.rate_per_second), timeout_seconds=settings.timeout_seconds,
            max_attempts=settings.max_attempts, backoff_seconds=settings.backoff_seconds,
            breaker_failures=settings.breaker_failures, breaker_reset_seconds=settings.breaker_reset_seconds,
            frequency_cap=settings.frequency_cap, quiet_hours=list(settings.quiet_hours or []),
            reconcile_after_minutes=settings.reconcile_after_minutes, expire_after_hours=settings.expire_after_hours,
            lease_seconds=settings.lease_seconds, unknown_outcome=settings.unknown_outcome,
            sendgrid_cancel_margin_minutes=settings.sendgrid_cancel_margin_minutes,
            duckdb_wait_seconds=settings.duckdb_wait_seconds,
        )

    @property
    def settings(self) -> ActivationSettings:
        return ActivationSettings(
            destinations=tuple(self.destinations), from_email=self.from_email, from_name=self.from_name,
            outbox_dir=Path(self.outbox_dir), sendgrid_host=self.sendgrid_host,
            sendgrid_unsubscribe_group_id=self.sendgrid_unsubscribe_group_id,
            sendgrid_batch_size=self.sendgrid_batch_size,
            smtp=SmtpTarget(self.smtp_host, self.smtp_port, self.smtp_username, self.smtp_security),
            rate_per_second=dict(self.rate_per_second), timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts, backoff_seconds=self.backoff_seconds,
            breaker_failures=self.breaker_failures, breaker_reset_seconds=self.breaker_reset_seconds,
            frequency_cap=self.frequency_cap,
            quiet_hours=(self.quiet_hours[0], self.quiet_hours[1]) if len(self.quiet_hours) == 2 else None,
            reconcile_after_minutes=self.reconcile_after_minutes, expire_after_hours=self.expire_after_hours,
            lease_seconds=self.lease_seconds, unknown_outcome=self.unknown_outcome,
            sendgrid_cancel_margin_minutes=self.sendgrid_cancel_margin_minutes,
            duckdb_wait_seconds=self.duckdb_wait_seconds,
        )
