"""The outbox: one .eml file per message in a directory, which any mail client opens.

A file is written under a temporary name, flushed to disk (fsync) and only then renamed into place,
so a message is in the outbox completely or not at all, even after a power cut; its name comes from
the Message-ID, so finding it answers "was it sent?". Before deliver() returns - and so before the
ledger records the batch as handed over - each folder written to is fsynced once, which makes the
renames themselves durable.

Where the time goes, per message: composing it (to_bytes, CPU) and four system calls (create, write,
fsync, rename). The calls run on a few threads (they release the GIL), which also lets the
filesystem commit many fsyncs in one journal transaction; the composing of a large batch runs in a
small process pool (`workers`), each worker writing its own share, and the answers are joined in the
batch's order. A batch smaller than `pool_min` is written in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from pathlib import Path

from dagster_project.key_files import fsync_directory
from reverse_etl.destinations.base import BatchResult
from reverse_etl.outgoing import MessageCompositionError, OutgoingMessage, message_date, message_file_stem

WRITE_THREADS = 8  # per process: fsyncs in flight together (and open files at once)
DEFAULT_WORKERS = 2
POOL_MIN = 200  # messages: below this a batch is written in this process (a pool costs more than it saves)
ACCEPTED = "accepted"


class OutboxDestination:
    name = "outbox"
    max_batch = 1000
    schedules_ahead = timedelta(hours=72)  # a drop directory: whatever picks it up honours the send time

    def __init__(self, directory: Path, from_email: str, from_name: str, workers: int | None = None,
                 pool_min: int = POOL_MIN):
        self.directory = Path(directory)
        self.from_email = from_email
        self.from_name = from_name
        # 0 or 1: no pool. Never more workers than cores.
        self.workers = min(DEFAULT_WORKERS if workers is None else workers, os.cpu_count() or 1)
        self.pool_min = pool_min
        self._pool: ProcessPoolExecutor | None = None
        self._lifeline = None  # the pool's workers exit when this end closes (close(), or this process ends)

    def path_for(self, message: OutgoingMessage) -> Path:
        return self.directory / message.campaign_id / f"{message_file_stem(message.message_id)}.eml"

    def deliver(self, batch: Sequence[OutgoingMessage], now: datetime, batch_id: str | None = None) -> BatchResult:
        result = BatchResult()
        if not batch:
            return result
        folders = {message.campaign_id for message in batch}
        for folder in folders:
            os.makedirs(os.path.join(self.directory, folder), exist_ok=True)
        args = (str(self.directory), self.from_email, self.from_name, message_date())
        outcomes = self._in_pool(batch, args) if self.workers > 1 and len(batch) >= self.pool_min else None
        if outcomes is None:
            outcomes = write_messages(batch, *args)
        # The renames are durable once their folders are: one fsync each, before the ledger hears of them.
        for folder in folders:
            fsync_directory(os.path.join(self.directory, folder))
        for message_id, outcome, detail in outcomes:  # in the batch's order
            if outcome == ACCEPTED:
                result.accepted[message_id] = detail
            else:
                result.unsendable[message_id] = (outcome, detail)
        return result

    def _in_pool(self, batch: Sequence[OutgoingMessage], args: tuple) -> list | None:
        """The batch in contiguous shares, one per worker, answers joined in the batch's order; None
        when the pool cannot work (a worker could not start or died): then this process writes the
        batch, and every later one. Rewriting a file a worker wrote gives the same file (same name,
        same bytes: the Date is the batch's)."""
        shares = _split(list(batch), self.workers)
        try:
            if self._pool is None:
                # forkserver: a worker inherits neither the caller's threads nor its warehouse connection.
                context = multiprocessing.get_context(
                    "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
                lifeline, self._lifeline = context.Pipe(duplex=False)
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_exit_with_sender,
                                                 initargs=(lifeline,))
            futures = [self._pool.submit(write_messages, share, *args) for share in shares]
            return [outcome for future in futures for outcome in future.result()]
        except (BrokenProcessPool, RuntimeError):  # RuntimeError: a worker could not even be started
            self.close()
            self.workers = 0
            return None

    def find_accepted(self, messages: Sequence[OutgoingMessage]) -> dict[str, str]:
        return {m.message_id: str(self.path_for(m).relative_to(self.directory))
                for m in messages if self.path_for(m).is_file()}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None


def write_messages(messages: Sequence[OutgoingMessage], directory: str, from_email: str, from_name: str,
                   date: str) -> list[tuple[str, str, str]]:
    """Compose each message and write it durably under <directory>/<campaign_id>/ (folders exist).
    Returns, in order, (message_id, "accepted", the file's relative name) or (message_id, reason,
    error) for a message that cannot be composed. The folders still need their fsync (the renames)."""
    outcomes, writes = [], []
    with ThreadPoolExecutor(WRITE_THREADS) as threads:
        for message in messages:
            try:
                payload = message.to_bytes(from_email, from_name, date)
            except MessageCompositionError as error:
                outcomes.append((message.message_id, "compose_failed", str(error)[:500]))
                continue
            name = f"{message.campaign_id}/{message_file_stem(message.message_id)}.eml"
            writes.append(threads.submit(_write_durably, os.path.join(directory, name), payload))
            outcomes.append((message.message_id, ACCEPTED, name))
        for write in writes:
            write.result()  # an OSError (a full disk) fails the whole batch, as the sender expects
    return outcomes


def _write_durably(path: str, payload: bytes) -> None:
    """Write to path.partial, fsync it, rename it to path: the name never shows a partial file."""
    partial = path + ".partial"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(descriptor, view):]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(partial, path)


def _exit_with_sender(lifeline) -> None:
    """In a pool worker: exit once the sender is gone. A killed sender (SIGKILL, OOM) never shuts its
    pool down, and its idle workers would wait for work forever; only the sender holds the other end of
    `lifeline`, so it reads end-of-file the moment the sender's process ends."""

    def watch() -> None:
        try:
            lifeline.recv()
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="outbox-lifeline", daemon=True).start()


def _split(items: list, parts: int) -> list[list]:
    """Contiguous shares, in order, as even as possible."""
    size, extra = divmod(len(items), parts)
    shares, start = [], 0
    for index in range(parts):
        end = start + size + (index < extra)
        shares.append(items[start:end])
        start = end
    return [share for share in shares if share]
