"""Random keys kept in a file, for local use (`make demo`, tests) when no secret is configured.

A key file appears whole or not at all: the key is written to a private temporary file beside it,
fsynced, and then published under the final name with a hard link, which fails when the name already
exists. So a crash never leaves an empty or half-written key, and two processes starting at once never
replace a key the other one has already used to sign links: the loser of the race reads the winner's.
"""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path

KEY_BYTES = 32  # random bytes in a new key, written as 64 hex characters


class KeyFileError(ValueError):
    """The key file exists but cannot be used; str(error) names the file and what to do."""


def read_or_create_key(path: Path, min_bytes: int) -> bytes:
    """The key in `path`, created first when the file does not exist."""
    path = Path(path)
    if not path.exists():
        _publish_new_key(path)
    return read_key(path, min_bytes)


def read_key(path: Path, min_bytes: int) -> bytes:
    key = Path(path).read_bytes().strip()
    if not key:
        raise KeyFileError(
            f"the key file {path} is empty (an interrupted start of an older Mailroom left it so, before any "
            "link could be signed with it): delete it and a new key is created on the next start"
        )
    if len(key) < min_bytes:
        raise KeyFileError(
            f"the key file {path} holds {len(key)} bytes; a key needs at least {min_bytes}. Delete the file to "
            "have a new random key created (links signed with the old one stop working)"
        )
    return key


def _publish_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        try:
            # link, not os.replace: publishing must not overwrite a key another process created meanwhile.
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race; its key is the one everybody uses
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(path.parent)


def fsync_directory(folder: Path) -> None:
    """Make a rename or link in `folder` durable (the directory entry, not only the file)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
