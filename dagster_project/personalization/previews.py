"""The email as it renders: one preview per campaign run, segment and variant, written as files.

For each (segment, variant) of a run, the message of one real recipient (the lowest customer id, so
the choice is the same on every run and on both engines) is copied from ops.campaign_messages as it
was rendered, HTML and text, into

    <previews_dir>/<campaign>/index.html                    every preview: subject, preheader, links
    <previews_dir>/<campaign>/<segment>__<variant>.html     the message's HTML as sent
    <previews_dir>/<campaign>/<segment>__<variant>.txt      its text version

File names come from the keys, which are data: `safe_name` keeps them to [a-z0-9_-] (with a hash of
the key when it had to change one, so two keys never share a file). Files are replaced atomically
and only when their bytes change, so re-running a run leaves the folder as it was; previews of
(segment, variant) pairs no longer in the run are removed. The index shows the recipient's customer
id and a masked address, never the address. The files are readable by their owner only (0600, in
0700 folders): a preview is a real person's message. The receiver serves the folder read-only at
/preview/ to this machine, when it listens on a loopback address or is told to (see the receiver).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from dagster_project.quality.masking import mask_value
from dagster_project.warehouse import Warehouse

INDEX = "index.html"
SEPARATOR = "__"  # between segment and variant in a file name; safe_name never yields two underscores
SUFFIXES = (".html", ".txt")
# Every name the writer makes (and the only names the receiver serves): no dot files, no "..".
SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
PREVIEW_FILE = re.compile(rf"{SAFE_NAME.pattern}\.(?:html|txt)")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_MAX_NAME = 60


@dataclass(frozen=True)
class Preview:
    campaign_id: str
    segment_key: str
    variant_id: str
    subject: str
    preheader: str
    html_path: Path  # the .txt with the text version lies beside it
    text: str  # the text body, as sent
    customer_id: str  # the sample recipient (whose merge fields fill the message)
    # The recipient's own values in the message (first name, address): the files keep them, anything
    # kept for good elsewhere (Dagster's metadata) shows placeholders instead (see redacted_text).
    personal: tuple[tuple[str, str], ...] = ()

    def redacted_text(self) -> str:
        text = self.text
        for label, value in self.personal:
            if len(value.strip()) >= 2:
                text = re.sub(rf"(?<!\w){re.escape(value.strip())}(?!\w)", f"[{label}]", text)
        return text

    @property
    def text_path(self) -> Path:
        return self.html_path.with_suffix(".txt")

    @property
    def index_path(self) -> Path:
        return self.html_path.parent / INDEX


def safe_name(key: str) -> str:
    """A file name part for a key: the key itself when it is already lower-case [a-z0-9_-] without a
    double underscore, else its safe characters plus a hash of the whole key (case-insensitive file
    systems included, two keys never map to one name)."""
    safe = re.sub(r"_{2,}", "_", _UNSAFE.sub("-", key.lower())).strip("-_")[:_MAX_NAME].strip("-_")
    if safe == key and SAFE_NAME.fullmatch(safe):
        return safe
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{safe}-{digest}" if safe else digest


def preview_stem(segment_key: str, variant_id: str) -> str:
    return f"{safe_name(segment_key)}{SEPARATOR}{safe_name(variant_id)}"


def campaign_previews_dir(previews_dir: Path, campaign_id: str) -> Path:
    return Path(previews_dir) / safe_name(campaign_id)


UNSUBSCRIBE_TOKEN = re.compile(r"([?&;]token=)[A-Za-z0-9_.~%-]+")  # ';' ends "&amp;" in HTML


def disarm_unsubscribe(body: str) -> str:
    """The message with its one-click unsubscribe token left out: a preview is opened by people who
    are not its recipient, and the token would opt the recipient out."""
    return UNSUBSCRIBE_TOKEN.sub(r"\1preview-token-left-out", body)


def receiver_base_url(unsubscribe_url: str) -> str | None:
    """Where the receiver serves /preview/: the origin of the unsubscribe link, which it also serves
    (MAILROOM_UNSUBSCRIBE_URL); None when that is not an http(s) URL."""
    parts = urlsplit(unsubscribe_url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def write_campaign_previews(warehouse: Warehouse, campaign_id: str, run_key: str, previews_dir: Path,
                            audience_relation: str | None = None) -> list[Preview]:
    """Write the previews of run `run_key` of `campaign_id` (see the module docstring); returns one
    Preview per (segment, variant) of the run, sorted by segment and variant. A run without messages
    gets an index saying so and no previews. `audience_relation` (the campaign's audience model) gives
    each sample recipient's first name, so Preview.redacted_text can leave it out."""
    rows = _sample_messages(warehouse, campaign_id, run_key)
    first_names = _first_names(warehouse, audience_relation, sorted({row[2] for row in rows}))
    folder = campaign_previews_dir(previews_dir, campaign_id)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    previews, recipients, kept = [], {}, {INDEX}
    for segment_key, variant_id, customer_id, to_email, subject, preheader, html, text in rows:
        segment_key, variant_id = segment_key or "", variant_id or ""
        html_path = folder / f"{preview_stem(segment_key, variant_id)}.html"
        personal = tuple((label, value) for label, value in
                         (("first name", first_names.get(customer_id) or ""), ("address", to_email or "")) if value)
        preview = Preview(campaign_id, segment_key, variant_id, _stored(subject), _stored(preheader), html_path,
                          text or "", customer_id, personal)
        _write_if_changed(html_path, disarm_unsubscribe(html or "").encode("utf-8"))
        _write_if_changed(preview.text_path, disarm_unsubscribe(preview.text).encode("utf-8"))
        kept |= {html_path.name, preview.text_path.name}
        previews.append(preview)
        recipients[(segment_key, variant_id)] = mask_value(to_email) if to_email else "none"
    _write_if_changed(folder / INDEX, index_html(campaign_id, run_key, previews, recipients).encode("utf-8"))
    for stale in folder.iterdir():  # previews of pairs this run does not have any more
        if stale.name not in kept and SEPARATOR in stale.name and PREVIEW_FILE.fullmatch(stale.name) \
                and stale.is_file():
            stale.unlink()
    return previews


def _sample_messages(warehouse: Warehouse, campaign_id: str, run_key: str) -> list[tuple]:
    """Per (segment, variant) of the run, the message of its lowest customer id, in byte order on both
    engines (a language collation, PostgreSQL's default on many servers, orders ids differently)."""
    with warehouse.connect() as conn:
        if not conn.table_exists("ops", "campaign_messages"):
            return []
        return conn.fetchall(
            'select m.segment_key, m.variant_id, m.customer_id, m.to_email, m.subject, m.preheader, m.html_body, '
            'm.text_body from ops.campaign_messages as m '
            'join (select segment_key, variant_id, min(customer_id collate "C") as customer_id '
            '      from ops.campaign_messages where campaign_id = ? and run_key = ? group by segment_key, variant_id'
            ') as sample on sample.segment_key is not distinct from m.segment_key '
            'and sample.variant_id is not distinct from m.variant_id '
            'and sample.customer_id = m.customer_id collate "C" '
            'where m.campaign_id = ? and m.run_key = ? '
            'order by m.segment_key collate "C", m.variant_id collate "C"',
            [campaign_id, run_key, campaign_id, run_key],
        )


def _first_names(warehouse: Warehouse, relation: str | None, customer_ids: list[str]) -> dict[str, str]:
    if not relation or not customer_ids:
        return {}
    marks = ", ".join("?" for _ in customer_ids)
    with warehouse.connect() as conn:
        return {customer_id: first_name or "" for customer_id, first_name in conn.fetchall(
            f"select customer_id, first_name from {relation} where customer_id in ({marks})", customer_ids)}


def _stored(value: str | None) -> str:
    # bulk_insert stores an empty string as one space (an empty CSV field would read back as NULL)
    return (value or "").strip()


def _write_if_changed(path: Path, content: bytes) -> None:
    """Replace `path` with `content` atomically (a temporary dot file, renamed over it), and not at
    all when it already holds exactly these bytes."""
    try:
        if path.read_bytes() == content:
            return
    except FileNotFoundError:
        pass
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)  # one person's message: the owner's eyes only
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_STYLE = (
    "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;"
    "color:#222;line-height:1.4}table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;"
    "padding:.4rem .6rem;border-bottom:1px solid #ddd}th{background:#f4f4f4}.muted{color:#666}"
    ".note{background:#fff8e1;padding:.6rem .8rem;border-radius:.3rem}"
)


def index_html(campaign_id: str, run_key: str, previews: list[Preview], recipients: dict[tuple[str, str], str]) -> str:
    """The campaign's preview index: deterministic (no clock), every value escaped, relative links
    (it works opened from disk and served by the receiver)."""
    title = f"Previews of campaign {campaign_id}, run {run_key}"
    if previews:
        rows = "".join(
            f"<tr><td>{escape(p.segment_key)}</td><td>{escape(p.variant_id)}</td>"
            f"<td>{escape(p.subject)}</td><td class=\"muted\">{escape(p.preheader)}</td>"
            f"<td>{escape(p.customer_id)}<br><span class=\"muted\">"
            f"{escape(recipients.get((p.segment_key, p.variant_id), ''))}</span></td>"
            f"<td><a href=\"{escape(p.html_path.name, quote=True)}\">HTML</a> · "
            f"<a href=\"{escape(p.text_path.name, quote=True)}\">text</a></td></tr>"
            for p in previews
        )
        body = (
            f"<p>{len(previews):,} previews, one per segment and variant: each is the message of one real recipient "
            "of the run (the lowest customer id), exactly as it was rendered for sending.</p>"
            "<p class=\"note\">The links inside a preview are live, except the unsubscribe link: its token, the "
            "sample recipient's own, is left out, so opening a preview never opts anyone out.</p>"
            "<table><thead><tr><th>segment</th><th>variant</th><th>subject</th><th>preheader</th>"
            f"<th>sample recipient</th><th>preview</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        body = "<p>No message was rendered in this run, so there is nothing to preview.</p>"
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<meta name=\"robots\" content=\"noindex\"><title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )
