"""Secrets stay secret and keys stay usable: the unsubscribe secret (explicit, at least 32 bytes; a
key file only for local use, written whole or not at all), and the CRM database URL, whose password
never reaches Dagster resource config or an error message."""

from __future__ import annotations

import re
import stat
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dagster_project.defs.engagement.resource import CrmSyncResource
from dagster_project.key_files import KeyFileError, read_or_create_key
from dagster_project.redaction import redact_url
from dagster_project.settings import (
    SettingsError,
    SyncSettings,
    crm_database_password,
    load_sync_settings,
    receiver_unsubscribe_secret,
    unsubscribe_secret,
)
from reverse_etl.sync.destinations.database import DatabaseCrm
from reverse_etl.sync.errors import SyncError
from reverse_etl.sync.pacing import Pacer
from reverse_etl.sync.run import build_destination

# --- the unsubscribe secret and its key file ----------------------------------------------------------

def test_a_configured_secret_wins_and_must_have_32_bytes(tmp_path):
    secret = "0123456789abcdef0123456789abcdef"
    assert unsubscribe_secret(tmp_path, {"MAILROOM_UNSUBSCRIBE_SECRET": secret}) == secret.encode()
    assert not (tmp_path / ".unsubscribe_secret").exists()
    with pytest.raises(SettingsError, match="MAILROOM_UNSUBSCRIBE_SECRET is 31 bytes long; use at least 32"):
        unsubscribe_secret(tmp_path, {"MAILROOM_UNSUBSCRIBE_SECRET": secret[:-1]})
    with pytest.raises(SettingsError, match="at least 32"):
        receiver_unsubscribe_secret(tmp_path, {"MAILROOM_UNSUBSCRIBE_SECRET": "é" * 15})  # 30 bytes, 15 characters


def test_without_a_secret_the_pipeline_creates_one_key_file_and_keeps_it(tmp_path):
    key = unsubscribe_secret(tmp_path / "data", {})
    path = tmp_path / "data" / ".unsubscribe_secret"
    assert re.fullmatch(rb"[0-9a-f]{64}", key) and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert unsubscribe_secret(tmp_path / "data", {}) == key
    assert sorted(p.name for p in path.parent.iterdir()) == [".unsubscribe_secret"]  # no temporary file left


def test_the_receiver_never_falls_back_to_the_key_file(tmp_path):
    unsubscribe_secret(tmp_path, {})
    with pytest.raises(SettingsError) as refused:
        receiver_unsubscribe_secret(tmp_path, {})
    message = str(refused.value)
    assert "MAILROOM_UNSUBSCRIBE_SECRET is not set" in message and "secrets.token_urlsafe" in message
    assert str(tmp_path / ".unsubscribe_secret") in message  # how to use the demo's key on purpose


def test_processes_starting_at_once_all_get_the_same_key(tmp_path):
    path = tmp_path / "keys" / ".unsubscribe_secret"
    for _ in range(5):
        path.unlink(missing_ok=True)
        with ThreadPoolExecutor(max_workers=8) as pool:
            keys = set(pool.map(lambda _: read_or_create_key(path, 32), range(16)))
        assert keys == {path.read_bytes()} and len(path.read_bytes()) == 64
    assert sorted(p.name for p in path.parent.iterdir()) == [".unsubscribe_secret"]


def test_a_failed_write_leaves_no_key_file_behind(tmp_path, monkeypatch):
    import dagster_project.key_files as key_files

    def no_randomness(size):
        raise OSError("no entropy today")

    monkeypatch.setattr(key_files.secrets, "token_hex", no_randomness)
    with pytest.raises(OSError, match="no entropy"):
        read_or_create_key(tmp_path / ".unsubscribe_secret", 32)
    assert list(tmp_path.iterdir()) == []  # neither an empty key nor a temporary file


@pytest.mark.parametrize("content, expected",
                         [(b"", "is empty"), (b"\n  \n", "is empty"), (b"short-key", "holds 9 bytes")])
def test_an_unusable_key_file_is_named_not_used(tmp_path, content, expected):
    path = tmp_path / ".unsubscribe_secret"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=expected):
        read_or_create_key(path, 32)
    with pytest.raises(SettingsError, match=f"{re.escape(str(path))}.*MAILROOM_UNSUBSCRIBE_SECRET"):
        unsubscribe_secret(tmp_path, {})
    assert path.read_bytes() == content  # never replaced behind the operator's back


# --- the CRM database URL -------------------------------------------------------------------------------

CRM_URL = "postgresql://crm_writer:s3cret%21pw@crm.internal:5432/sales?sslmode=require"


def test_the_crm_password_never_sits_in_resource_config(monkeypatch, tmp_path):
    monkeypatch.setenv("MAILROOM_CRM_DATABASE_URL", CRM_URL)
    monkeypatch.setenv("MAILROOM_DATA_DIR", str(tmp_path))
    resource = CrmSyncResource.from_settings(load_sync_settings())
    dumped = repr(resource.model_dump())
    assert "s3cret" not in dumped and "crm_writer@crm.internal:5432/sales?sslmode=require" in dumped
    destination = build_destination(resource.settings, Pacer(0, 1))
    assert destination._connect().url.password == "s3cret!pw"  # read when it connects
    destination.close()


def test_the_crm_password_goes_only_to_the_url_it_came_with(monkeypatch):
    monkeypatch.setenv("MAILROOM_CRM_DATABASE_URL", CRM_URL)
    assert crm_database_password("postgresql://crm_writer@crm.internal:5432/sales?sslmode=require") == "s3cret!pw"
    # A URL changed in the launchpad must not receive the password of another database.
    for elsewhere in ("postgresql://crm_writer@evil.example.com:5432/sales?sslmode=require",
                      "postgresql://crm_writer@crm.internal:5432/other?sslmode=require",
                      "postgresql://someone@crm.internal:5432/sales?sslmode=require"):
        assert crm_database_password(elsewhere) == ""
        destination = build_destination(SyncSettings(database_url=elsewhere), Pacer(0, 1))
        assert destination._connect().url.password is None
        destination.close()
    assert crm_database_password("not a url") == ""


@pytest.mark.parametrize("url", ["postgresql://writer:s3cret-pw@crm.internal:notaport/sales",
                                 "s3cret-pw is not a url", "postgresql://writer:s3cret-pw@[::1/sales"])
def test_a_malformed_crm_url_is_named_with_its_password_redacted(url, tmp_path):
    with pytest.raises(SettingsError) as refused:
        load_sync_settings({"MAILROOM_CRM_DATABASE_URL": url, "MAILROOM_DATA_DIR": str(tmp_path)})
    message = str(refused.value)
    assert "MAILROOM_CRM_DATABASE_URL" in message and "s3cret" not in message
    with pytest.raises(SyncError) as stopped:
        DatabaseCrm(url, "crm_contacts", Pacer(0, 1)).identity()
    assert "s3cret" not in str(stopped.value) and "MAILROOM_CRM_DATABASE_URL" in str(stopped.value)


def test_an_unreachable_crm_database_is_reported_without_its_password():
    crm = DatabaseCrm("postgresql://writer:s3cret-pw@127.0.0.1:1/sales", "crm_contacts", Pacer(0, 1))
    with pytest.raises(SyncError) as stopped:
        crm.rows_held()
    assert "writer:***@127.0.0.1:1/sales" in str(stopped.value) and "s3cret" not in str(stopped.value)
    crm.close()


# --- redaction, for any URL -----------------------------------------------------------------------------

URL_TEXT = st.characters(codec="utf-8", exclude_categories=("Cs",))


@hypothesis_settings(max_examples=500, deadline=None)
@given(scheme=st.sampled_from(["postgresql", "postgresql+psycopg", "mysql", "sqlite", "smtp", ""]),
       user=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters=":@/"), max_size=12),
       password=st.one_of(st.text(URL_TEXT, min_size=4, max_size=24),
                          st.sampled_from(["pa://ss", "p@ss:w/rd", "?password=x&", "pw#frag@", "très sécret"])),
       host=st.text(st.characters(codec="ascii", categories=("Ll", "Nd")), min_size=1, max_size=12),
       tail=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="@"), max_size=30),
       escaped=st.booleans())
def test_redaction_hides_the_password_of_any_url(scheme, user, password, host, tail, escaped):
    """Whatever the password holds (":", "/", "@", "?", spaces, any script), escaped or not, the
    redacted URL does not contain it, and still shows the host to tell which database it was (text
    without a scheme is no URL and is not shown at all)."""
    written = quote(password, safe="") if escaped else password
    prefix = f"{scheme}://" if scheme else ""
    url = f"{prefix}{user}:{written}@{host}{tail}"
    assume(written not in f"{prefix}{user}:***@{host}{tail}")
    redacted = redact_url(url)
    assert written not in redacted
    assert f"@{host}" in redacted if scheme else redacted == "***"


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_redaction_never_fails(text):
    assert isinstance(redact_url(text), str)


def test_redaction_hides_credential_query_parameters_and_keeps_the_rest():
    assert redact_url("postgresql://u@h/db?sslmode=require&password=pw1&sslpassword=pw2") == (
        "postgresql://u@h/db?sslmode=require&password=***&sslpassword=***")
    assert redact_url("sqlite:////var/lib/crm.sqlite") == "sqlite:////var/lib/crm.sqlite"
    assert redact_url("postgresql://u:p@ss@host:5432/db") == "postgresql://u:***@host:5432/db"
    assert redact_url("user:pass://word@host/db") == "***"  # no scheme: the "://" is in the password

