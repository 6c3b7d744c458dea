"""An in-process SMTP server (aiosmtpd) on loopback, so tests drive `smtplib` against real SMTP.

Messages accepted at DATA are recorded with their Message-ID and Subject. Faults are injected the way
a real relay shows them: transient 4xx answers to DATA (`fail_next`), permanent 5xx answers to RCPT
(`reject_recipient`), and a server that is gone (`stop()`: connection refused) and back (`start()`).
With `smtputf8=True` the server offers SMTPUTF8 (RFC 6531) and takes internationalized addresses;
without it, it refuses them the way a relay without the extension does (553 to MAIL or RCPT).
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import warnings
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    message_id: str | None
    subject: str | None
    raw: bytes


class LocalSmtpServer:
    def __init__(self, username: str | None = None, password: str | None = None, smtputf8: bool = False):
        self.host = HOST
        self.smtputf8 = smtputf8
        self.port = _free_port()  # kept across stop()/start(), so a client can reconnect to the same address
        self.username, self.password = username, password
        self._messages: list[ReceivedMessage] = []
        self._connections = 0
        self._failures: list[str] = []  # answers for the next DATA commands
        self._rejections: dict[str, str] = {}
        self._lock = threading.Lock()
        self._probing = False
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Messages accepted, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """SMTP sessions opened by clients (the controller's own start-up probe is not counted)."""
        with self._lock:
            return self._connections

    def fail_next(self, n: int = 1, code: int = 451,
                  message: str = "4.3.0 Temporary failure, try again later") -> None:
        """Answer the next n DATA commands with this code; those messages are not recorded."""
        with self._lock:
            self._failures.extend([f"{code} {message}"] * n)

    def reject_recipient(self, address: str, code: int = 550, message: str = "5.1.1 Mailbox unavailable") -> None:
        """Answer RCPT TO for this address with this code, every time."""
        with self._lock:
            self._rejections[address.lower()] = f"{code} {message}"

    def start(self) -> None:
        auth = {}
        if self.username is not None:
            # Plain SMTP on loopback: AUTH must not wait for a STARTTLS the test server does not offer.
            auth = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        controller = _CountingController(self, _Handler(self), hostname=HOST, port=self.port,
                                         enable_SMTPUTF8=self.smtputf8, **auth)
        self._probing = True  # Controller.start() opens one connection of its own to check the server is up
        try:
            controller.start()
        finally:
            self._probing = False
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> LocalSmtpServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _opened(self) -> None:
        if not self._probing:
            with self._lock:
                self._connections += 1

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.username.encode()
              and auth_data.password == (self.password or "").encode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 on failure

    def _rejection(self, address: str) -> str | None:
        with self._lock:
            return self._rejections.get(address.lower())

    def _next_failure(self) -> str | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _store(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> None:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        message_id, subject = parsed.get("Message-ID"), parsed.get("Subject")
        received = ReceivedMessage(mail_from, list(rcpt_tos), str(message_id) if message_id else None,
                                   str(subject) if subject is not None else None, raw)
        with self._lock:
            self._messages.append(received)


class _CountingController(Controller):
    def __init__(self, owner: LocalSmtpServer, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._owner = owner

    def factory(self):
        self._owner._opened()  # aiosmtpd builds one SMTP protocol object per connection
        with warnings.catch_warnings():
            # AUTH without TLS is deliberate here: the server only ever listens on loopback.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return super().factory()


class _Handler:
    """aiosmtpd hooks; they run on the controller's event loop thread."""

    def __init__(self, owner: LocalSmtpServer):
        self._owner = owner

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rejection = self._owner._rejection(address)
        if rejection:
            return rejection
        envelope.rcpt_tos.append(address)  # a handle_RCPT hook must collect accepted recipients itself
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        failure = self._owner._next_failure()
        if failure:
            return failure
        self._owner._store(envelope.mail_from, envelope.rcpt_tos, envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
