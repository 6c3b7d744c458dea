"""Reverse ETL: the send ledger, email destinations (SendGrid, SMTP, outbox), the CRM sync engine and
the webhook receiver. Plain Python; Dagster assets under dagster_project/defs wrap it."""
