"""SMTP with smtplib over one reused connection (re-opened when the server drops it).

Each message goes through MAIL, RCPT and DATA by hand so the server's reply to DATA (which names
the queue id) becomes the provider id. A reply code is a known outcome (4xx: try again, 5xx: refused
for good); losing the connection during DATA leaves the outcome unknown. A message that cannot go
(an internationalized address the server cannot take without SMTPUTF8, a message that cannot be
composed) fails alone with its reason; the rest of the batch goes on.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from dagster_project.settings import SmtpTarget
from reverse_etl.destinations.base import (
    BatchResult,
    DeliveryError,
    DestinationUnavailable,
    OutcomeUnknown,
    TransientFailure,
)
from reverse_etl.outgoing import MessageCompositionError, OutgoingMessage

IDLE_CHECK_SECONDS = 5.0  # a connection idle this long is checked with NOOP before reuse


class SmtpDestination:
    name = "smtp"
    # Messages per ledger step: a crash leaves at most this many with an unknown outcome (held, never
    # resent), while a commit per message would cap throughput at the warehouse's commit rate.
    max_batch = 20
    schedules_ahead = timedelta(0)  # a relay delivers at once: messages wait in the ledger until due

    def __init__(self, target: SmtpTarget, password: Callable[[], str], from_email: str, from_name: str,
                 timeout_seconds: float = 30.0):
        self.target = target
        self._password = password
        self.from_email = from_email
        self.from_name = from_name
        self.timeout_seconds = timeout_seconds
        self._connection: smtplib.SMTP | None = None
        self._last_used = 0.0
        self.connections_opened = 0

    def deliver(self, batch: Sequence[OutgoingMessage], now: datetime, batch_id: str | None = None) -> BatchResult:
        result = BatchResult()
        try:
            for message in batch:
                self._send_one(message, now, result)
        except DeliveryError as error:
            error.partial = result
            raise
        return result

    def _send_one(self, message: OutgoingMessage, now: datetime, result: BatchResult) -> None:
        connection = self._connected()
        options = self._mail_options(connection, message, result)
        if options is None:
            return
        try:
            payload = message.to_bytes(self.from_email, self.from_name)
        except MessageCompositionError as error:
            result.unsendable[message.message_id] = ("compose_failed", str(error)[:500])
            return
        try:
            code, text = connection.mail(self.from_email, options)
            if code >= 500:  # the sender itself is refused: no message can go until someone fixes it
                raise DestinationUnavailable(f"SMTP server refused the sender {self.from_email}: {code} {text!r}; "
                                             "check MAILROOM_FROM_EMAIL")
            self._expect((code, text), (250,), message)
            self._expect(connection.rcpt(message.to_email), (250, 251), message)
        except _Refused as refused:
            self._reset(connection)
            result.rejected[message.message_id] = refused.reason
            return
        except UnicodeError as error:  # smtplib could not write the address in the command
            self._reset(connection)
            result.unsendable[message.message_id] = ("invalid_address", f"cannot be written in SMTP: {error}"[:500])
            return
        except (TransientFailure, DestinationUnavailable):
            self._reset(connection)
            raise
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            self._drop()
            raise TransientFailure(f"SMTP connection lost before DATA: {error}") from error
        try:
            code, reply = connection.data(payload)
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            self._drop()
            unknown = OutcomeUnknown(f"SMTP connection lost during DATA: {error}")
            unknown.unknown_ids = {message.message_id}
            raise unknown from error
        except smtplib.SMTPDataError as error:
            code, reply = error.smtp_code, error.smtp_error
        self._last_used = time.monotonic()
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        if code == 250:
            result.accepted[message.message_id] = text[:200]
        elif 400 <= code < 500:
            raise TransientFailure(f"SMTP server deferred the message: {code} {text}")
        else:
            result.rejected[message.message_id] = f"smtp {code} {text}"[:500]

    def _mail_options(self, connection: smtplib.SMTP, message: OutgoingMessage,
                      result: BatchResult) -> list[str] | None:
        """MAIL FROM parameters: SMTPUTF8 for an internationalized address (RFC 6531), when the server
        offers it; None when it does not (the message fails with the reason, the batch goes on)."""
        if not message.needs_smtputf8:
            return []
        if not connection.has_extn("smtputf8"):
            result.unsendable[message.message_id] = (
                "smtputf8_unsupported", f"the address is internationalized and SMTP server {self.target.host} does "
                "not offer SMTPUTF8 (RFC 6531)")
            return None
        return ["SMTPUTF8", *(["BODY=8BITMIME"] if connection.has_extn("8bitmime") else [])]

    def find_accepted(self, messages: Sequence[OutgoingMessage]) -> None:
        return None  # an SMTP relay cannot be asked what it took

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._connection = None

    def _connected(self) -> smtplib.SMTP:
        if self._connection is not None and time.monotonic() - self._last_used > IDLE_CHECK_SECONDS:
            try:
                if self._connection.noop()[0] != 250:
                    self._drop()
            except (smtplib.SMTPException, OSError):
                self._drop()
        if self._connection is None:
            self._connection = self._open()
            self._last_used = time.monotonic()
        return self._connection

    def _open(self) -> smtplib.SMTP:
        target = self.target
        connection = None
        try:
            if target.security == "ssl":
                connection = smtplib.SMTP_SSL(target.host, target.port, timeout=self.timeout_seconds,
                                              context=ssl.create_default_context())
            else:
                connection = smtplib.SMTP(target.host, target.port, timeout=self.timeout_seconds)
                if target.security == "starttls":
                    connection.starttls(context=ssl.create_default_context())
            connection.ehlo()  # MAIL FROM is sent by hand below, so greet first (again after STARTTLS)
            if target.username:
                connection.login(target.username, self._password())
        except (smtplib.SMTPException, OSError) as error:
            if connection is not None:  # a failed login or STARTTLS must not leave the socket open
                connection.close()
            raise self._failure(error) from error
        self.connections_opened += 1
        return connection

    def _failure(self, error: Exception):
        target = self.target
        if isinstance(error, smtplib.SMTPAuthenticationError):
            return DestinationUnavailable(
                f"SMTP server {target.host}:{target.port} refused the login of {target.username!r}: "
                f"{error.smtp_code} {error.smtp_error!r}; check the user and password in MAILROOM_SMTP_URL"
            )
        if isinstance(error, smtplib.SMTPNotSupportedError):
            return DestinationUnavailable(
                f"SMTP server {target.host}:{target.port} does not offer STARTTLS ({error}); use smtps:// "
                "for implicit TLS, or ?tls=none only for a relay on a trusted network"
            )
        return TransientFailure(f"cannot connect to SMTP server {target.host}:{target.port}: {error}")

    def _expect(self, reply: tuple[int, bytes], ok: tuple[int, ...], message: OutgoingMessage) -> None:
        code, text = reply
        if code in ok:
            return
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        if 400 <= code < 500:
            raise TransientFailure(f"SMTP server deferred {message.message_id}: {code} {text}")
        raise _Refused(f"smtp {code} {text}"[:500])

    def _reset(self, connection: smtplib.SMTP) -> None:
        try:
            connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except OSError:
                pass
        self._connection = None


class _Refused(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
