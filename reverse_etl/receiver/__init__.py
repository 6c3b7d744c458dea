"""The webhook and unsubscribe receiver: a small ASGI service (Starlette on uvicorn) that lands
SendGrid's signed Event Webhook posts and RFC 8058 one-click unsubscribes as files in the landing
directory, where the ingest picks them up. Start it with `python -m reverse_etl.receiver`."""

from reverse_etl.receiver.app import create_app

__all__ = ["create_app"]
