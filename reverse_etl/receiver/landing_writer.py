"""Durable landing files: a file appears under its final name only once every byte is on disk.

Each file is written under a hidden temporary name in the same directory (which the ingest skips:
it ignores names starting with "." and partial ".tmp" files), flushed and fsynced, renamed into
place atomically, and the directory is fsynced so the rename itself survives a crash. A caller that
answers its client only after this returns never acknowledges data it could lose.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from dagster_project.key_files import fsync_directory


def landing_file_name(prefix: str, now: datetime | None = None) -> str:
    """`<prefix>-<UTC yyyymmddTHHMMSS>-<uuid>.jsonl`: unique, and sorted by arrival second."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{prefix}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex}.jsonl"


def write_landing_file(folder: Path, prefix: str, lines: Iterable[bytes]) -> Path:
    """Write `lines` (one JSON document each, without newline) as a new JSONL file in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / landing_file_name(prefix)
    temporary = folder / f".{final.name}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with os.fdopen(descriptor, "wb") as out:
            for line in lines:
                out.write(line)
                out.write(b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(folder)
    return final
