"""Property tests for what the receiver parses from outside, with hypothesis: any timestamp or
signature header, any body, any token is refused with the receiver's own error (never an unexpected
exception, which would be a 500), and the replay memory behaves like a set with expiry."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dagster_project.personalization.render import sign_unsubscribe_token, verify_unsubscribe_token
from reverse_etl.receiver.events import MalformedBody, split_events
from reverse_etl.receiver.recent import MemoryFull, RecentlySeen, digest_of
from reverse_etl.receiver.signature import (
    FUTURE_SKEW_SECONDS,
    MAX_TIMESTAMP_DIGITS,
    SignatureRejected,
    WebhookVerifier,
)

SECRET = b"property-test-secret-of-32-bytes!"
NOW = 1_780_000_000.0
VERIFIER = WebhookVerifier(ec.generate_private_key(ec.SECP256R1()).public_key(), max_age_seconds=300)
HEADER_TEXT = st.text(st.characters(codec="latin-1"), max_size=300)  # what an HTTP header can carry


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.one_of(HEADER_TEXT, st.integers(min_value=-10**30, max_value=10**30).map(str),
                 st.integers(min_value=0, max_value=40).map(lambda n: "9" * n + "1" * (n % 3))))
def test_any_timestamp_header_is_accepted_only_as_recent_unix_seconds(timestamp):
    try:
        VERIFIER.check_timestamp(timestamp, NOW)
    except SignatureRejected:
        return
    assert timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS
    assert -FUTURE_SKEW_SECONDS <= NOW - int(timestamp) <= 300


@hypothesis_settings(max_examples=300, deadline=None)
@given(HEADER_TEXT, st.binary(max_size=200))
def test_any_signature_header_without_the_key_is_refused(signature, body):
    try:
        VERIFIER.verify(signature, str(int(NOW)), body)
    except SignatureRejected:
        return
    raise AssertionError(f"accepted a signature nobody made: {signature!r}")


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_body_is_split_into_one_line_objects_or_refused(body):
    try:
        events = split_events(body)
    except MalformedBody:
        return
    for line in events:
        assert b"\n" not in line and b"\r" not in line
        assert isinstance(json.loads(line), dict)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=10)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4), max_size=5), st.sampled_from([None, 2]))
def test_every_event_of_a_json_array_comes_out_as_it_went_in(events, indent):
    lines = split_events(json.dumps(events, indent=indent).encode())
    assert [json.loads(line) for line in lines] == events


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=300).map(lambda b: b.hex()), st.none(), st.integers()))
def test_any_token_that_was_not_issued_opens_to_nothing(token):
    assert verify_unsubscribe_token(SECRET, token) is None


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30), st.emails(), st.data())
def test_an_issued_token_opens_and_any_single_change_breaks_it(customer_id, campaign_id, email, data):
    token = sign_unsubscribe_token(SECRET, customer_id, campaign_id, email)
    assert verify_unsubscribe_token(SECRET, token) == (customer_id, campaign_id, email)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    altered = token[:position] + replacement + token[position + 1:]
    if altered != token:
        assert verify_unsubscribe_token(SECRET, altered) is None


class RecentlySeenAgainstASet(RuleBasedStateMachine):
    """RecentlySeen answers as a set of (digest, expiry) would, with a clock that moves by hand."""

    WINDOW, CAPACITY = 10.0, 4

    def __init__(self):
        super().__init__()
        self.now = 0.0
        self.memory = RecentlySeen(self.WINDOW, self.CAPACITY, clock=lambda: self.now)
        self.model: dict[bytes, float] = {}

    def live(self) -> dict[bytes, float]:
        return {digest: expiry for digest, expiry in self.model.items() if expiry > self.now}

    @rule(key=st.integers(min_value=0, max_value=6))
    def claim(self, key):
        digest = digest_of([str(key).encode()])
        live = self.live()
        try:
            first = self.memory.claim(digest)
        except MemoryFull:
            assert digest not in live and len(live) >= self.CAPACITY
            return
        assert first == (digest not in live)
        if first:
            self.model[digest] = self.now + self.WINDOW

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def release(self, data):
        digest = data.draw(st.sampled_from(sorted(self.model)))
        self.memory.release(digest)
        del self.model[digest]

    @rule(seconds=st.floats(min_value=0, max_value=15))
    def wait(self, seconds):
        self.now += seconds

    @invariant()
    def holds_the_live_entries(self):
        assert len(self.memory) == len(self.live())


TestRecentlySeen = RecentlySeenAgainstASet.TestCase
TestRecentlySeen.settings = hypothesis_settings(max_examples=100, stateful_step_count=30, deadline=None)


def test_digests_of_different_part_lists_differ():
    assert digest_of([b"ab", b"c"]) != digest_of([b"a", b"bc"]) != digest_of([b"abc"])
    assert digest_of([b"ab", b"c"]) == digest_of([b"ab", b"c"])
