"""GET /preview/...: the campaign previews (dagster_project/personalization/previews.py), read-only.

    GET /preview/                      the campaigns that have previews
    GET /preview/<campaign>/           that campaign's index.html
    GET /preview/<campaign>/<file>     one preview, .html or .txt

Only names the preview writer makes are served (lower-case letters, digits, '-', '_'; .html or .txt),
and only when the file, symlinks resolved, lies inside the previews directory; anything else is 404.
A preview is one real recipient's message, and the receiver faces the internet for SendGrid's
webhooks: the routes exist only when the receiver listens on a loopback address or
MAILROOM_RECEIVER_PREVIEWS=on, and then answer clients on this machine only (loopback, and no
Forwarded/X-Forwarded-For header: a request relayed by a proxy on this host came from elsewhere).
Every answer forbids scripts, forms and plugins and sandboxes the page: a preview is an email's HTML,
which is data.
"""

from __future__ import annotations

import ipaddress
from html import escape
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from dagster_project.personalization.previews import INDEX, PREVIEW_FILE, SAFE_NAME, SUFFIXES

PREVIEW_PATH = "/preview/"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
HEADERS = {
    "Cache-Control": "no-store",  # a new run replaces the previews
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex",
    # Email HTML styles itself inline and may show remote images; nothing else runs or loads. The
    # sandbox (without allow-scripts, allow-forms, allow-same-origin) holds even where script-src
    # would not; links may open in a new tab.
    "Content-Security-Policy": "default-src 'none'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox",
}


def preview_file(previews_dir: Path, campaign: str, name: str) -> Path | None:
    """The file to serve for /preview/<campaign>/<name>, or None (404): a name the writer could have
    made, resolving (symlinks followed) to a regular file inside `previews_dir`."""
    if not (SAFE_NAME.fullmatch(campaign) and PREVIEW_FILE.fullmatch(name)):
        return None
    try:
        root = Path(previews_dir).resolve(strict=True)
        target = (root / campaign / name).resolve(strict=True)
        if target.suffix not in SUFFIXES or not target.is_relative_to(root) or not target.is_file():
            return None
    except (OSError, ValueError, RuntimeError):  # missing, a NUL byte, a symlink loop
        return None
    return target


def campaigns_with_previews(previews_dir: Path) -> list[str]:
    try:
        names = sorted(entry.name for entry in Path(previews_dir).iterdir())
    except OSError:
        return []
    return [name for name in names if preview_file(previews_dir, name, INDEX)]


PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def from_this_machine(request: Request) -> bool:
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # not an address (a test client's name)
        return False


def preview_routes(previews_dir: Path) -> list[Route]:
    async def listing(request: Request) -> Response:
        if not from_this_machine(request):
            return _not_here()
        campaigns = await run_in_threadpool(campaigns_with_previews, previews_dir)
        items = "".join(f"<li><a href=\"{escape(name, quote=True)}/\">{escape(name)}</a></li>" for name in campaigns)
        body = f"<ul>{items}</ul>" if campaigns else "<p>No previews yet: they are written when a campaign renders.</p>"
        return HTMLResponse(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">"
            f"<title>Campaign previews</title></head><body><h1>Campaign previews</h1>{body}</body></html>",
            headers=HEADERS,
        )

    async def campaign_index(request: Request) -> Response:
        if not from_this_machine(request):
            return _not_here()
        return await _serve(request.path_params["campaign"], INDEX)

    async def one_file(request: Request) -> Response:
        if not from_this_machine(request):
            return _not_here()
        return await _serve(request.path_params["campaign"], request.path_params["name"])

    def _not_here() -> Response:
        return Response("previews are served on this machine only", status_code=403, media_type="text/plain",
                        headers=HEADERS)

    async def _serve(campaign: str, name: str) -> Response:
        content = await run_in_threadpool(_read, campaign, name)
        if content is None:
            return Response("no such preview", status_code=404, media_type="text/plain", headers=HEADERS)
        body, content_type = content
        return Response(body, headers={**HEADERS, "Content-Type": content_type})

    def _read(campaign: str, name: str) -> tuple[bytes, str] | None:
        path = preview_file(previews_dir, campaign, name)
        if path is None:
            return None
        try:
            return path.read_bytes(), CONTENT_TYPES[path.suffix]
        except OSError:  # replaced or removed in between
            return None

    return [
        Route(PREVIEW_PATH, listing, methods=["GET"]),
        Route(PREVIEW_PATH + "{campaign}/", campaign_index, methods=["GET"]),
        Route(PREVIEW_PATH + "{campaign}/{name}", one_file, methods=["GET"]),
    ]
