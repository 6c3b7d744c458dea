"""Email destinations: the outbox (embedded default), SendGrid v3 and SMTP."""
