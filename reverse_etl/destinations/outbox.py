"""The outbox: one .eml file per message in a directory, which any mail client opens.

A file is written under a temporary name and renamed into place, so a message is in the outbox
completely or not at all; its name comes from the Message-ID, so finding it answers "was it sent?".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from reverse_etl.destinations.base import BatchResult
from reverse_etl.outgoing import MessageCompositionError, OutgoingMessage, message_file_stem


class OutboxDestination:
    name = "outbox"
    max_batch = 1000
    schedules_ahead = timedelta(hours=72)  # a drop directory: whatever picks it up honours the send time

    def __init__(self, directory: Path, from_email: str, from_name: str):
        self.directory = Path(directory)
        self.from_email = from_email
        self.from_name = from_name

    def path_for(self, message: OutgoingMessage) -> Path:
        return self.directory / message.campaign_id / f"{message_file_stem(message.message_id)}.eml"

    def deliver(self, batch: Sequence[OutgoingMessage], now: datetime, batch_id: str | None = None) -> BatchResult:
        result = BatchResult()
        folders = set()
        for message in batch:  # plain os.path in this loop: pathlib cost as much as the writing
            folder = os.path.join(self.directory, message.campaign_id)
            if folder not in folders:
                os.makedirs(folder, exist_ok=True)
                folders.add(folder)
            name = f"{message_file_stem(message.message_id)}.eml"
            path = os.path.join(folder, name)
            try:
                payload = message.to_bytes(self.from_email, self.from_name)
            except MessageCompositionError as error:
                result.unsendable[message.message_id] = ("compose_failed", str(error)[:500])
                continue
            with open(path + ".partial", "wb") as out:
                out.write(payload)
            os.replace(path + ".partial", path)
            result.accepted[message.message_id] = f"{message.campaign_id}/{name}"
        # One sync per batch rather than per file: the ledger marks the batch accepted only after it.
        if batch:
            os.sync()
        return result

    def find_accepted(self, messages: Sequence[OutgoingMessage]) -> dict[str, str]:
        return {m.message_id: str(self.path_for(m).relative_to(self.directory))
                for m in messages if self.path_for(m).is_file()}

    def close(self) -> None:
        pass
