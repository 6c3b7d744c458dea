"""One structured-output call to an OpenAI-compatible Chat Completions endpoint -> a ContentUnit.

Every failure becomes an LlmError with a small set of kinds, so the chain can fall back and
ops.llm_calls can count outcomes. The client never retries by itself (max_retries=0): the chain
decides what happens next, and the daily budget sees every call.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field

import openai
from pydantic import ValidationError

from dagster_project.personalization.content import ContentUnit

ERROR_KINDS = ("timeout", "server_error", "rate_limited", "quota", "invalid_json", "schema_mismatch", "auth",
               "bad_request", "connection")
TEMPERATURE = 0.3  # low: on-brief and repeatable, with a little variety between variants

# Strict mode accepts a subset of JSON Schema. String lengths are not part of it, so they are
# dropped from what is sent; pydantic and the guardrails still enforce them on the answer.
_UNSUPPORTED_IN_STRICT = ("title", "default", "minLength", "maxLength")


@dataclass(frozen=True)
class LlmEndpoint:
    name: str  # "openai" or "secondary"
    base_url: str | None  # None: the openai client's default (api.openai.com)
    api_key: str = field(repr=False)  # never in logs or Dagster metadata
    model: str
    input_usd_per_million: float
    output_usd_per_million: float
    timeout_seconds: float = 20.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_usd_per_million + output_tokens * self.output_usd_per_million) / 1e6


class LlmError(Exception):
    """A call that produced no usable unit. Tokens and cost are set when the model answered (badly):
    those calls are billed, so they count against the budget too."""

    def __init__(self, kind: str, message: str, input_tokens: int = 0, output_tokens: int = 0,
                 cost_usd: float = 0.0):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown LlmError kind {kind!r}; use one of {ERROR_KINDS}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cost_usd = cost_usd


@dataclass
class LlmAnswer:
    unit: ContentUnit
    input_tokens: int
    output_tokens: int
    cost_usd: float
    model: str


def strict_json_schema(model: type = ContentUnit) -> dict:
    """The model's JSON schema as strict Structured Outputs wants it: every object closed
    (additionalProperties false) with every property required, unsupported keywords removed."""
    schema = copy.deepcopy(model.model_json_schema())

    def tighten(node: dict) -> None:
        for key in _UNSUPPORTED_IN_STRICT:
            node.pop(key, None)
        if node.get("type") == "object":
            node["additionalProperties"] = False
            node["required"] = list(node.get("properties", {}))
        for key in ("properties", "$defs"):
            for child in node.get(key, {}).values():
                tighten(child)
        for key in ("anyOf", "allOf", "prefixItems"):
            for child in node.get(key, []):
                tighten(child)
        if isinstance(node.get("items"), dict):
            tighten(node["items"])

    tighten(schema)
    return schema


RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "content_unit", "strict": True, "schema": strict_json_schema()},
}


@functools.lru_cache(maxsize=16)
def _client(endpoint: LlmEndpoint) -> openai.OpenAI:
    # One client (and connection pool) per endpoint, not per call.
    return openai.OpenAI(api_key=endpoint.api_key, base_url=endpoint.base_url, timeout=endpoint.timeout_seconds,
                         max_retries=0)


def write_with_llm(endpoint: LlmEndpoint, system: str, user: str) -> LlmAnswer:
    try:
        response = _client(endpoint).chat.completions.create(
            model=endpoint.model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            response_format=RESPONSE_FORMAT,
            temperature=TEMPERATURE,
        )
    except openai.OpenAIError as error:
        raise _as_llm_error(endpoint, error) from error

    choice = response.choices[0] if response.choices else None
    content = choice.message.content if choice else None
    if response.usage is not None:
        input_tokens, output_tokens = response.usage.prompt_tokens, response.usage.completion_tokens
    else:
        # Some compatible servers omit usage; estimate (~4 characters a token) so the budget still counts.
        input_tokens, output_tokens = (len(system) + len(user)) // 4, len(content or "") // 4
    billed = dict(input_tokens=input_tokens, output_tokens=output_tokens,
                  cost_usd=endpoint.cost(input_tokens, output_tokens))
    where = f"{endpoint.name} ({endpoint.model})"
    if content is None:
        refusal = choice.message.refusal if choice else None
        raise LlmError("schema_mismatch", f"{where} answered without content"
                       + (f" (refusal: {refusal})" if refusal else ""), **billed)
    if choice.finish_reason == "length":
        raise LlmError("invalid_json", f"{where} stopped at the token limit mid-answer", **billed)
    try:
        unit = ContentUnit.model_validate_json(content)
    except ValidationError as error:
        kind = "invalid_json" if any(e["type"] == "json_invalid" for e in error.errors()) else "schema_mismatch"
        fields = ", ".join(sorted({".".join(map(str, e["loc"])) or e["type"] for e in error.errors()}))
        raise LlmError(kind, f"{where} answered with no valid content unit ({fields})", **billed) from None
    return LlmAnswer(unit=unit, model=response.model or endpoint.model, **billed)


def _as_llm_error(endpoint: LlmEndpoint, error: openai.OpenAIError) -> LlmError:
    where = f"{endpoint.name} ({endpoint.model} at {endpoint.base_url or 'api.openai.com'})"
    # Order matters: APITimeoutError is an APIConnectionError, RateLimitError an APIStatusError.
    if isinstance(error, openai.APITimeoutError):
        return LlmError("timeout", f"{where} did not answer within {endpoint.timeout_seconds:g}s")
    if isinstance(error, openai.APIConnectionError):
        return LlmError("connection", f"{where} could not be reached; check the base URL and the network")
    if isinstance(error, openai.RateLimitError):
        if error.code == "insufficient_quota":
            return LlmError("quota", f"{where} reports the account's quota is used up; check billing")
        return LlmError("rate_limited", f"{where} rate limited the request: {error.message}")
    if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return LlmError("auth", f"{where} rejected the API key; check the key configured for this endpoint")
    if isinstance(error, openai.InternalServerError):
        return LlmError("server_error", f"{where} failed with HTTP {error.status_code}: {error.message}")
    if isinstance(error, openai.APIStatusError):
        kind = "server_error" if error.status_code >= 500 else "bad_request"
        return LlmError(kind, f"{where} refused the request with HTTP {error.status_code}: {error.message}")
    return LlmError("server_error", f"{where} failed: {error}")
