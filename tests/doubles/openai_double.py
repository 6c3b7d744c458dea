"""A local OpenAI Chat Completions server, so tests drive the real `openai` client over real HTTP.

Each request is answered according to a mode, taken in order from `script([...])`, then
`default_mode`. Error modes return the status codes, headers and error bodies OpenAI returns, so the
client raises the same exception classes it raises in production.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "slow", "429", "quota", "500", "503", "400", "401", "invalid_json", "schema_mismatch", "pii",
         "spammy")
PATHS = ("/v1/chat/completions", "/chat/completions")  # with or without /v1 in the client's base_url

# What the "pii" mode leaks into a body paragraph; tests assert these never reach a result.
PII_EMAIL = "jane.doe@example.com"
PII_PHONE = "(415) 555-0134"

_TOP_CATEGORY = re.compile(r'top categories:\s*"([^"]+)"', re.IGNORECASE)

_ERRORS = {
    "429": (429, "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): "
                 "Limit 3, Used 3, Requested 1. Please try again in 20s.", "requests", "rate_limit_exceeded"),
    "quota": (429, "You exceeded your current quota, please check your plan and billing details.",
              "insufficient_quota", "insufficient_quota"),
    "500": (500, "The server had an error while processing your request. Sorry about that!", "server_error", None),
    "503": (503, "The server is overloaded or not ready yet.", "server_error", None),
    "400": (400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
            "invalid_request_error", None),
    "401": (401, "Incorrect API key provided: sk-wrong. You can find your API key at "
                 "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"),
}


def ok_unit(category: str) -> dict:
    """A calm, specific unit that mentions the segment's category: passes the shipped brand's guardrails."""
    return {
        "subject": f"New in {category}: picks we think you'll like",
        "preheader": "A short edit of new arrivals, chosen for the way you shop.",
        "headline": f"The {category} edit has arrived",
        "body_paragraphs": [
            f"We picked a few new {category} pieces that sit well with what you already own.",
            "Take a look when you have a minute; your saved items are waiting in your account too.",
        ],
        "call_to_action": f"Browse the {category} edit",
    }


def spammy_unit(category: str) -> dict:
    """Valid against the schema, but shouting: ALL CAPS, exclamation marks, spam phrases."""
    return {
        "subject": "ACT NOW!!! FREE MONEY inside",
        "preheader": "Limited time only, click here!!!",
        "headline": "LAST CHANCE to get FREE MONEY!!!",
        "body_paragraphs": [f"Click here to claim FREE MONEY on {category} before it is gone!!! Act now!!!"],
        "call_to_action": "CLAIM NOW",
    }


class OpenAIDouble:
    def __init__(self, default_mode: str = "ok", slow_seconds: float = 1.5):
        self.default_mode = default_mode
        self.slow_seconds = slow_seconds
        self._script: list[str] = []
        self._requests: list[dict] = []
        self._authorizations: list[str | None] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()  # wakes "slow" handlers at shutdown
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    @property
    def requests(self) -> list[dict]:
        """JSON bodies received, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def authorizations(self) -> list[str | None]:
        """The Authorization header of each request, in arrival order."""
        with self._lock:
            return list(self._authorizations)

    def script(self, modes: Sequence[str]) -> None:
        """Answer the next requests with these modes, in order; then `default_mode` again."""
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown mode(s) {unknown}; use one of {MODES}")
        with self._lock:
            self._script.extend(modes)

    def _receive(self, body: dict, authorization: str | None) -> tuple[str, int]:
        with self._lock:
            self._requests.append(body)
            self._authorizations.append(authorization)
            mode = self._script.pop(0) if self._script else self.default_mode
            return mode, next(self._ids)

    def start(self) -> None:
        # A short poll interval: shutdown() waits up to one interval, once per test.
        threading.Thread(target=self._server.serve_forever, args=(0.02,), name="openai-double", daemon=True).start()

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def openai_double(default_mode: str = "ok", slow_seconds: float = 1.5) -> Iterator[OpenAIDouble]:
    double = OpenAIDouble(default_mode, slow_seconds)
    double.start()
    try:
        yield double
    finally:
        double.stop()


def _handler_for(double: OpenAIDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # keep test output quiet
            pass

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.split("?")[0] not in PATHS:
                return self._error(404, f"Invalid URL (POST {self.path})", "invalid_request_error", None)
            try:
                body = json.loads(raw)
            except ValueError:
                return self._error(400, "We could not parse the JSON body of your request.",
                                   "invalid_request_error", None)
            authorization = self.headers.get("Authorization")
            mode, number = double._receive(body, authorization)
            if not (authorization or "").startswith("Bearer ") or len(authorization) <= len("Bearer "):
                return self._error(401, "You didn't provide an API key. You need to provide your API key in an "
                                        "Authorization header using Bearer auth.", "invalid_request_error", None)
            problem = _schema_problem(body.get("response_format"))
            if problem:
                return self._error(400, problem, "invalid_request_error", "response_format")
            if mode in _ERRORS:
                return self._error(*_ERRORS[mode])
            if mode == "slow":
                double._closing.wait(double.slow_seconds)  # longer than the client's timeout
            self._complete(body, number, _content(mode, body))

        def _complete(self, request: dict, number: int, content: str) -> None:
            prompt = "".join(str(m.get("content", "")) for m in request.get("messages", []))
            # Deterministic stand-ins for real token counts: about four characters per token.
            prompt_tokens, completion_tokens = max(1, len(prompt) // 4), max(1, len(content) // 4)
            self._send(200, {
                "id": f"chatcmpl-double{number:06d}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model"),
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
                "system_fingerprint": "fp_double",
            })

        def _error(self, status: int, message: str, kind: str, code: str | None) -> None:
            headers = {}
            if status == 429:
                headers = {"retry-after": "20", "x-ratelimit-reset-requests": "20s",
                           "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0"}
            self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)

        def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-request-id", f"req_double_{id(payload):x}")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                # One connection per request: shutdown never waits on an idle keep-alive socket.
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

    return Handler


def _content(mode: str, request: dict) -> str:
    user = next((str(m.get("content", "")) for m in request.get("messages", []) if m.get("role") == "user"), "")
    found = _TOP_CATEGORY.search(user)
    category = found.group(1) if found else "new arrivals"
    if mode == "invalid_json":
        return "Sure! Here is your email:\n{subject: 'New arrivals', headline: ..."
    if mode == "schema_mismatch":
        return json.dumps({"subject": f"New {category}", "headline": "Just in"})
    if mode == "spammy":
        return json.dumps(spammy_unit(category))
    unit = ok_unit(category)
    if mode == "pii":
        unit["body_paragraphs"].append(f"Questions? Write to {PII_EMAIL} or call {PII_PHONE}.")
    return json.dumps(unit)


def _schema_problem(response_format) -> str | None:
    """What OpenAI's API rejects in a strict json_schema response_format (None when acceptable)."""
    if not response_format or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    if not spec.get("strict"):
        return None

    def walk(node, where: str) -> str | None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                if node.get("additionalProperties") is not False:
                    return (f"Invalid schema for response_format '{spec.get('name')}': In context={where}, "
                            "'additionalProperties' is required to be supplied and to be false.")
                missing = sorted(set(node.get("properties", {})) - set(node.get("required", [])))
                if missing:
                    return (f"Invalid schema for response_format '{spec.get('name')}': In context={where}, "
                            f"'required' is required to be supplied and to be an array including every key in "
                            f"properties. Missing '{missing[0]}'.")
            for key, value in node.items():
                problem = walk(value, f"{where}, '{key}'")
                if problem:
                    return problem
        elif isinstance(node, list):
            for value in node:
                problem = walk(value, where)
                if problem:
                    return problem
        return None

    return walk(spec.get("schema", {}), "()")
