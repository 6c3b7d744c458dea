"""The small, self-contained HTML pages of the unsubscribe flow (no external assets, no scripts).

Everything placed in a page is escaped; the token travels only in the form's action URL, and the
pages tell browsers not to cache them or send them on as a referrer.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from starlette.responses import HTMLResponse

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'",
}

_STYLE = (
    "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:32rem;margin:3rem auto;"
    "padding:0 1rem;color:#222;line-height:1.5}button{font:inherit;padding:.6rem 1rem;margin:.3rem 0;"
    "width:100%;border-radius:.4rem;border:1px solid #888;background:#fff;cursor:pointer}"
    "button.primary{background:#222;color:#fff;border-color:#222}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<meta name=\"robots\" content=\"noindex\"><title>{escape(title)}</title><style>{_STYLE}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def masked_address(email: str) -> str:
    """Enough of the address for its owner to recognise it: a***@example.com."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"


def confirmation_page(path: str, token: str, email: str) -> HTMLResponse:
    action = f"{path}?token={quote(token, safe='')}"
    return _page(
        "Email preferences",
        f"<p>Manage marketing email for <strong>{escape(masked_address(email))}</strong>.</p>"
        f"<form method=\"post\" action=\"{escape(action, quote=True)}\">"
        "<button class=\"primary\" type=\"submit\" name=\"choice\" value=\"all\">"
        "Unsubscribe from all marketing email</button>"
        "<button type=\"submit\" name=\"choice\" value=\"keep\">Keep me subscribed</button>"
        "</form>",
    )


def unsubscribed_page() -> HTMLResponse:
    return _page(
        "You are unsubscribed",
        "<p>You will not receive marketing email from us any more. Messages already on their way may "
        "still arrive for a short while.</p>",
    )


def kept_page() -> HTMLResponse:
    return _page("You are still subscribed", "<p>Nothing has changed: you will keep receiving our email.</p>")


def invalid_link_page() -> HTMLResponse:
    return _page(
        "This unsubscribe link is not valid",
        "<p>The link is incomplete or has been changed. Please use the unsubscribe link from one of our "
        "emails exactly as it appears there.</p>",
        status=400,
    )


def bad_choice_page() -> HTMLResponse:
    return _page("Unknown choice", "<p>Please choose one of the options on the preferences page.</p>", status=400)
