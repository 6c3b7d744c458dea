"""Split a SendGrid Event Webhook body (a JSON array of event objects) into one JSON text per
event, each exactly as it arrived: the receiver lands them without re-encoding anything."""

from __future__ import annotations

import json

_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder(parse_constant=lambda name: _refuse(f"{name} is not JSON"))


class MalformedBody(ValueError):
    """The body is not a JSON array of objects; str(error) says where, for the 400."""


def _refuse(reason: str):
    raise MalformedBody(reason)


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in _WHITESPACE:
        position += 1
    return position


def split_events(body: bytes) -> list[bytes]:
    """The events of a webhook body, one compact line each (insignificant line breaks between
    tokens become spaces, so each event stays on one JSONL line; strings cannot hold raw breaks)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("body is not UTF-8") from None
    position = _skip_whitespace(text, 0)
    if not text.startswith("[", position):
        raise MalformedBody("body must be a JSON array of event objects")
    position = _skip_whitespace(text, position + 1)
    events: list[bytes] = []
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            try:
                event, end = _DECODER.raw_decode(text, position)
            except json.JSONDecodeError as error:
                raise MalformedBody(f"malformed JSON at character {error.pos}: {error.msg}") from None
            if not isinstance(event, dict):
                raise MalformedBody(f"event #{len(events) + 1} is not a JSON object")
            raw = text[position:end]
            events.append(raw.replace("\r", " ").replace("\n", " ").encode("utf-8"))
            position = _skip_whitespace(text, end)
            if text.startswith(",", position):
                position = _skip_whitespace(text, position + 1)
            elif text.startswith("]", position):
                position += 1
                break
            else:
                raise MalformedBody(f"expected ',' or ']' at character {position}")
    if _skip_whitespace(text, position) != len(text):
        raise MalformedBody(f"unexpected data after the array at character {position}")
    return events
