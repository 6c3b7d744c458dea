"""Erasing a person at the CRM and the email provider (dagster_project/privacy/providers.py): the sync's CRM
table (SQLite, and PostgreSQL on the postgres run), and HubSpot and SendGrid through their official clients
against tests/doubles: the wire bodies, idempotency, retryable and permanent failures, and error messages
that never carry an identifier."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from dagster_project.privacy.providers import (
    DatabaseCrmEraser,
    HubSpotEraser,
    ProviderEraseError,
    SendGridEraser,
    configured_erasers,
)
from dagster_project.settings import (
    ActivationSettings,
    Settings,
    SyncSettings,
)
from reverse_etl.sync.destinations.base import UPSERT, SyncRow
from reverse_etl.sync.destinations.database import DatabaseCrm
from reverse_etl.sync.pacing import Pacer
from reverse_etl.sync.relation import INTEGER, TEXT, ModelColumn, Relation
from reverse_etl.throttle import Backoff

from doubles.hubspot_double import ACCESS_TOKEN, READ_PATH, HubSpotDouble
from doubles.sendgrid_double import (
    API_KEY,
    CONTACTS_PATH,
    CONTACTS_SEARCH_PATH,
    GLOBAL_SUPPRESSIONS_PATH,
    SendGridDouble,
)

ADDRESS, NORMALIZED = "  Jane.Doe@Example.COM", "jane.doe@example.com"
WORK_ADDRESS = "jd@work.example.org"
SEARCH, SUPPRESS, DELETE = ("POST", CONTACTS_SEARCH_PATH), ("POST", GLOBAL_SUPPRESSIONS_PATH), ("DELETE", CONTACTS_PATH)


def assert_masked(error: ProviderEraseError, *identifiers: str) -> None:
    """No identifier in the message, in any case, nor in a chained exception a log would print."""
    text = str(error).lower()
    for identifier in (ADDRESS.strip(), NORMALIZED, WORK_ADDRESS, *identifiers):
        assert identifier.lower() not in text, (identifier, str(error))
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.fixture
def hubspot(monkeypatch):
    monkeypatch.setenv("MAILROOM_HUBSPOT_ACCESS_TOKEN", ACCESS_TOKEN)
    with HubSpotDouble() as double:
        yield double


@pytest.fixture
def sendgrid():
    with SendGridDouble() as double:
        yield double


def hubspot_eraser(double: HubSpotDouble, **kwargs) -> HubSpotEraser:
    sync = SyncSettings(destination="hubspot", hubspot_host=double.url, **kwargs)
    return configured_erasers(Settings(), sync, ActivationSettings())["hubspot"]


def sendgrid_eraser(double: SendGridDouble, sleeps: list[float], confirm_searches: int = 5) -> SendGridEraser:
    return SendGridEraser(double.url, lambda: API_KEY, confirm_searches=confirm_searches, confirm_wait_seconds=0.5,
                          sleep=sleeps.append)


def calls(double: SendGridDouble) -> list[tuple]:
    return [(c.method, c.path, c.status) for c in double.marketing_calls]


# --- which steps are configured -------------------------------------------------------------------------

def test_each_step_has_an_eraser_only_when_its_destination_is_configured(tmp_path, monkeypatch):
    for name in ("MAILROOM_CRM_DESTINATION", "MAILROOM_CRM_DATABASE_URL", "MAILROOM_CRM_DATABASE_TABLE",
                 "MAILROOM_DESTINATIONS", "MAILROOM_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    default = configured_erasers(Settings(data_dir=tmp_path))
    assert set(default) == {"crm_database", "hubspot", "sendgrid"}
    assert isinstance(default["crm_database"], DatabaseCrmEraser)
    # where the sync writes by default: crm.sqlite in this Mailroom's data directory
    assert (default["crm_database"].url, default["crm_database"].table) == (
        f"sqlite:///{tmp_path.resolve() / 'crm.sqlite'}", "crm_contacts")
    assert default["hubspot"] is None and default["sendgrid"] is None

    remote = configured_erasers(Settings(data_dir=tmp_path),
                                SyncSettings(destination="hubspot", hubspot_host="https://hubspot.test"),
                                ActivationSettings(destinations=("sendgrid", "outbox"),
                                                   sendgrid_host="https://sendgrid.test"))
    assert remote["crm_database"] is None
    assert isinstance(remote["hubspot"], HubSpotEraser) and remote["hubspot"].host == "https://hubspot.test"
    assert isinstance(remote["sendgrid"], SendGridEraser) and remote["sendgrid"].host == "https://sendgrid.test"


def test_erasers_built_from_the_environment_reach_the_configured_services(monkeypatch, hubspot, sendgrid):
    for name, value in {"MAILROOM_CRM_DESTINATION": "hubspot", "MAILROOM_HUBSPOT_HOST": hubspot.url,
                        "MAILROOM_HUBSPOT_ACCESS_TOKEN": ACCESS_TOKEN, "MAILROOM_DESTINATIONS": "sendgrid",
                        "MAILROOM_SENDGRID_HOST": sendgrid.url, "MAILROOM_SENDGRID_API_KEY": API_KEY}.items():
        monkeypatch.setenv(name, value)
    hubspot.add_contact(NORMALIZED)
    sendgrid.add_contact(NORMALIZED)
    erasers = configured_erasers(Settings())
    assert erasers["crm_database"] is None

    assert erasers["hubspot"].erase([ADDRESS], [], []) == {"deleted": 0, "already_gone": 0, "addresses": 1}
    assert hubspot.contacts == {}
    erasers["sendgrid"].confirm_wait_seconds = 0
    assert erasers["sendgrid"].erase([ADDRESS], [], []) == {"suppressed": 1, "deleted": 1, "invalid": 0}
    assert sendgrid.contacts == {} and sendgrid.global_suppressions == {NORMALIZED}


# --- the database CRM -------------------------------------------------------------------------------------

RELATION = Relation("marts", "sync_crm__contacts", (ModelColumn("customer_id", TEXT, "VARCHAR"),
                                                    ModelColumn("email", TEXT, "VARCHAR"),
                                                    ModelColumn("sends_30d", INTEGER, "INTEGER")), ("customer_id",))


def crm_url(settings: Settings) -> str:
    """As the sync tests: SQLite next to the DuckDB warehouse; the test's PostgreSQL database on the postgres run."""
    return (settings.postgres.url if settings.warehouse == "postgres"
            else f"sqlite:///{settings.data_dir / 'crm.sqlite'}")


def write_crm(url: str, contacts: dict[str, str], table: str = "crm_contacts") -> None:
    """The contacts written the way the sync writes them (its DatabaseCrm creates the table and upserts)."""
    crm = DatabaseCrm(url, table, Pacer(0, 1, Backoff(rng=random.Random(1)), sleep=lambda seconds: None))
    crm.prepare(RELATION)
    rows = [SyncRow(customer, "hash", {"customer_id": customer, "email": email, "sends_30d": 1})
            for customer, email in contacts.items()]
    assert crm.write(rows, UPSERT).acknowledged == set(contacts)
    crm.close()


def crm_contacts(url: str, table: str = "crm_contacts") -> dict[str, str | None]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text(f"SELECT customer_id, email FROM {table}")).all())
    finally:
        engine.dispose()


def test_the_crm_table_loses_the_persons_rows_by_customer_id_and_address_and_only_theirs(settings):
    url = crm_url(settings)
    write_crm(url, {"cust-1": NORMALIZED, "cust-2": "Jane.Doe@EXAMPLE.com", "cust-3": "other@example.com",
                    "cust-4": "Élodie@example.com", "cust-5": "five@example.com", "cust-6": "jane.doe@example.co"})
    eraser = configured_erasers(settings, SyncSettings(database_url=url), ActivationSettings())["crm_database"]

    counts = eraser.erase([ADDRESS, "élodie@example.com"], ["hs-1"], ["cust-5"])

    assert counts == {"deleted": 3}
    # Élodie and élodie are two addresses (only ASCII letters fold), even where lower() folds both alike.
    assert crm_contacts(url) == {"cust-3": "other@example.com", "cust-4": "Élodie@example.com",
                                 "cust-6": "jane.doe@example.co"}
    assert eraser.erase([ADDRESS, "élodie@example.com"], ["hs-1"], ["cust-5"]) == {"deleted": 0}
    assert len(crm_contacts(url)) == 3


def test_a_crm_table_or_file_never_written_holds_nobody_and_is_not_created(settings, tmp_path):
    eraser = DatabaseCrmEraser(crm_url(settings), "crm_contacts")
    assert eraser.erase([ADDRESS], [], ["cust-1"]) == {"deleted": 0}
    missing = tmp_path / "nowhere" / "crm.sqlite"
    assert DatabaseCrmEraser(f"sqlite:///{missing}", "crm_contacts").erase([ADDRESS], [], ["cust-1"]) == {"deleted": 0}
    assert not missing.parent.exists()


def test_a_crm_table_that_is_not_the_syncs_is_a_permanent_failure_naming_the_setting(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (person VARCHAR, mail VARCHAR)"))
    engine.dispose()
    with pytest.raises(ProviderEraseError) as failure:
        DatabaseCrmEraser(url, "people").erase([ADDRESS], [], ["cust-1"])
    assert not failure.value.retryable and "MAILROOM_CRM_DATABASE_TABLE" in str(failure.value)
    assert_masked(failure.value, "cust-1")


def test_an_unreachable_crm_database_is_retryable_and_its_password_stays_out_of_the_message():
    eraser = DatabaseCrmEraser("postgresql://crm:pw-s3cret@127.0.0.1:1/crm", "crm_contacts")
    with pytest.raises(ProviderEraseError) as failure:
        eraser.erase([ADDRESS], [], ["cust-1"])
    assert failure.value.retryable and "pw-s3cret" not in str(failure.value)
    assert_masked(failure.value, "cust-1")


# --- HubSpot --------------------------------------------------------------------------------------------

def test_hubspot_gets_a_gdpr_delete_per_contact_id_and_per_address(hubspot):
    hubspot.add_contact(NORMALIZED)
    old, kept = hubspot.add_contact("old@example.com"), hubspot.add_contact("other@example.com")
    eraser = hubspot_eraser(hubspot)

    counts = eraser.erase([ADDRESS, WORK_ADDRESS], [old.id, "999999"], ["cust-1"])

    assert counts == {"deleted": 1, "already_gone": 1, "addresses": 2}
    assert hubspot.gdpr_deletes == [{"objectId": old.id}, {"objectId": "999999"},
                                    {"objectId": NORMALIZED, "idProperty": "email"},
                                    {"objectId": WORK_ADDRESS, "idProperty": "email"}]
    assert [r.status for r in hubspot.requests] == [204, 404, 204, 204]
    assert {c.id for c in hubspot.contacts.values()} == {kept.id}
    assert hubspot.blocklisted == {WORK_ADDRESS}  # no contact had it: HubSpot blocklists the address

    again = eraser.erase([ADDRESS, WORK_ADDRESS], [old.id, "999999"], ["cust-1"])

    assert again == {"deleted": 0, "already_gone": 2, "addresses": 2}
    assert {c.id for c in hubspot.contacts.values()} == {kept.id}
    assert hubspot.blocklisted == {WORK_ADDRESS, NORMALIZED}


def test_a_portal_keyed_by_customer_id_is_read_by_it_and_its_contacts_deleted_by_id(hubspot):
    hubspot.unique_properties = {"mailroom_customer_id"}
    alias = hubspot.add_contact("alias@example.com", {"mailroom_customer_id": "cust-1"})
    kept = hubspot.add_contact("other@example.com", {"mailroom_customer_id": "cust-2"})

    counts = hubspot_eraser(hubspot, hubspot_id_property="mailroom_customer_id").erase([ADDRESS], [], ["cust-1"])

    assert counts == {"deleted": 1, "already_gone": 0, "addresses": 1}
    assert [(r.path, r.ids) for r in hubspot.requests][0] == (READ_PATH, ["cust-1"])
    assert hubspot.gdpr_deletes == [{"objectId": alias.id}, {"objectId": NORMALIZED, "idProperty": "email"}]
    assert list(hubspot.contacts) == ["other@example.com"] and kept.id == hubspot.contacts["other@example.com"].id


@pytest.mark.parametrize("mode", ["503", "429", "drop"])
def test_hubspot_outages_and_rate_limits_are_retryable_and_the_retry_succeeds(hubspot, mode):
    hubspot.add_contact(NORMALIZED)
    hubspot.retry_after = "7"
    hubspot.script([mode])
    eraser = hubspot_eraser(hubspot)

    with pytest.raises(ProviderEraseError) as failure:
        eraser.erase([ADDRESS], ["1001"], [])

    assert failure.value.retryable
    assert failure.value.retry_after == (7.0 if mode == "429" else None)
    assert_masked(failure.value, "1001")
    assert eraser.erase([ADDRESS], ["1001"], []) == {"deleted": 1, "already_gone": 0, "addresses": 1}
    assert hubspot.contacts == {}


def test_a_refused_or_missing_hubspot_token_is_permanent_and_names_the_setting(hubspot, monkeypatch):
    hubspot.add_contact(NORMALIZED)
    for token in ("pat-na1-revoked", ""):
        monkeypatch.setenv("MAILROOM_HUBSPOT_ACCESS_TOKEN", token)
        with pytest.raises(ProviderEraseError) as failure:
            hubspot_eraser(hubspot).erase([ADDRESS], [], [])
        assert not failure.value.retryable and "MAILROOM_HUBSPOT_ACCESS_TOKEN" in str(failure.value)
        assert_masked(failure.value)
    assert [r.status for r in hubspot.requests] == [401]
    assert NORMALIZED in hubspot.contacts


def test_an_address_hubspot_echoes_in_a_refusal_is_masked(hubspot):
    hubspot.gdpr_delete = lambda body: (400, {"status": "error", "category": "VALIDATION_ERROR",
                                              "message": f"Email address {body['objectId']} is invalid"})
    with pytest.raises(ProviderEraseError) as failure:
        hubspot_eraser(hubspot).erase([ADDRESS], [], [])
    assert not failure.value.retryable
    assert "j***@example.com" in str(failure.value)
    assert_masked(failure.value)


# --- SendGrid -------------------------------------------------------------------------------------------

def test_sendgrid_suppresses_every_address_then_deletes_the_contacts_and_confirms_they_are_gone(sendgrid):
    jane, work = sendgrid.add_contact(NORMALIZED), sendgrid.add_contact(WORK_ADDRESS)
    sendgrid.add_contact("other@example.com")
    sleeps: list[float] = []
    eraser = sendgrid_eraser(sendgrid, sleeps)

    counts = eraser.erase([ADDRESS, WORK_ADDRESS.upper()], ["hs-1"], ["cust-1"])

    assert counts == {"suppressed": 2, "deleted": 2, "invalid": 0}
    assert calls(sendgrid) == [(*SUPPRESS, 201), (*SEARCH, 200), (*DELETE, 202), (*SEARCH, 404)]
    suppress, search, delete, _ = sendgrid.marketing_calls
    assert suppress.body == {"recipient_emails": [NORMALIZED, WORK_ADDRESS]}
    assert search.body == {"emails": [NORMALIZED, WORK_ADDRESS]}
    assert delete.query == {"ids": ",".join(sorted([jane, work]))} and delete.body is None
    assert sendgrid.delete_jobs and list(sendgrid.delete_jobs.values()) == [sorted([jane, work])]
    assert [c.email for c in sendgrid.contacts.values()] == ["other@example.com"]
    assert sendgrid.global_suppressions == {NORMALIZED, WORK_ADDRESS}
    assert sleeps == [0.5]


def test_sendgrid_erasure_again_suppresses_again_and_deletes_nothing(sendgrid):
    sendgrid.add_contact(NORMALIZED)
    eraser = sendgrid_eraser(sendgrid, [])
    eraser.erase([ADDRESS], [], [])
    before = len(sendgrid.marketing_calls)

    assert eraser.erase([ADDRESS], [], []) == {"suppressed": 1, "deleted": 0, "invalid": 0}
    assert calls(sendgrid)[before:] == [(*SUPPRESS, 201), (*SEARCH, 404)]


def test_someone_who_was_never_a_sendgrid_contact_is_suppressed_and_the_search_answers_404(sendgrid):
    sendgrid.add_contact("other@example.com")
    assert sendgrid_eraser(sendgrid, []).erase([ADDRESS], [], []) == {"suppressed": 1, "deleted": 0, "invalid": 0}
    assert calls(sendgrid) == [(*SUPPRESS, 201), (*SEARCH, 404)]
    assert sendgrid.global_suppressions == {NORMALIZED} and len(sendgrid.contacts) == 1


def test_a_delete_job_that_takes_a_while_is_waited_for_by_searching_again_until_404(sendgrid):
    contact = sendgrid.add_contact(NORMALIZED)
    sendgrid.delete_after_searches = 2
    sleeps: list[float] = []

    counts = sendgrid_eraser(sendgrid, sleeps).erase([ADDRESS], [], [])

    assert counts == {"suppressed": 1, "deleted": 1, "invalid": 0}
    assert calls(sendgrid) == [(*SUPPRESS, 201), (*SEARCH, 200), (*DELETE, 202), (*SEARCH, 200), (*SEARCH, 200),
                               (*SEARCH, 404)]
    assert sendgrid.marketing_calls[2].query == {"ids": contact}
    assert sleeps == [0.5, 0.5, 0.5] and sendgrid.contacts == {}


def test_a_delete_job_still_running_after_the_last_search_is_retryable_and_a_retry_confirms_it(sendgrid):
    sendgrid.add_contact(NORMALIZED)
    sendgrid.delete_after_searches = 3
    sleeps: list[float] = []

    with pytest.raises(ProviderEraseError) as failure:
        sendgrid_eraser(sendgrid, sleeps, confirm_searches=1).erase([ADDRESS], [], [])

    assert failure.value.retryable and "the delete job is still running" in str(failure.value)
    assert_masked(failure.value)
    assert sleeps == [0.5] and len(sendgrid.contacts) == 1
    assert sendgrid_eraser(sendgrid, sleeps).erase([ADDRESS], [], [])["suppressed"] == 1
    assert sendgrid.contacts == {}
    assert calls(sendgrid)[-1] == (*SEARCH, 404)


def test_an_address_sendgrid_calls_invalid_is_left_out_and_the_others_are_erased(sendgrid):
    sendgrid.invalid_addresses = {"bad@example.com"}
    sendgrid.add_contact(NORMALIZED)

    counts = sendgrid_eraser(sendgrid, []).erase([ADDRESS, "bad@example.com"], [], [])

    assert counts == {"suppressed": 1, "deleted": 1, "invalid": 1}
    assert [(c.status, c.body) for c in sendgrid.marketing_calls[:3]] == [
        (400, {"recipient_emails": ["bad@example.com", NORMALIZED]}),
        (400, {"recipient_emails": ["bad@example.com"]}),
        (201, {"recipient_emails": [NORMALIZED]})]
    assert sendgrid.marketing_calls[3].body == {"emails": [NORMALIZED]}
    assert sendgrid.global_suppressions == {NORMALIZED} and sendgrid.contacts == {}


@pytest.mark.parametrize("mode", ["503", "429", "500", "drop_before"])
def test_sendgrid_outages_and_rate_limits_are_retryable_and_the_retry_succeeds(sendgrid, mode):
    sendgrid.add_contact(NORMALIZED)
    sendgrid.script(["202", mode])  # the suppression goes through; the search fails
    eraser = sendgrid_eraser(sendgrid, [])

    with pytest.raises(ProviderEraseError) as failure:
        eraser.erase([ADDRESS], [], [])

    assert failure.value.retryable
    assert (failure.value.retry_after is not None) == (mode == "429")
    assert_masked(failure.value)
    assert eraser.erase([ADDRESS], [], []) == {"suppressed": 1, "deleted": 1, "invalid": 0}
    assert sendgrid.contacts == {}


def test_a_refused_or_missing_sendgrid_key_is_permanent_and_names_the_setting(sendgrid):
    sendgrid.add_contact(NORMALIZED)
    for key in ("SG.revoked", ""):
        with pytest.raises(ProviderEraseError) as failure:
            SendGridEraser(sendgrid.url, lambda: key).erase([ADDRESS], [], [])
        assert not failure.value.retryable and "MAILROOM_SENDGRID_API_KEY" in str(failure.value)
        assert_masked(failure.value)
    assert calls(sendgrid) == [(*SUPPRESS, 401)]
    assert len(sendgrid.contacts) == 1 and not sendgrid.global_suppressions


def test_an_address_sendgrid_echoes_in_a_refusal_is_masked(sendgrid):
    sendgrid.suppress_globally = lambda body: (403, {"errors": [
        {"field": None, "message": f"access forbidden for {body['recipient_emails'][0].upper()}"}]})
    with pytest.raises(ProviderEraseError) as failure:
        sendgrid_eraser(sendgrid, []).erase([ADDRESS], [], [])
    assert not failure.value.retryable and "MAILROOM_SENDGRID_API_KEY" in str(failure.value)
    assert "j***@example.com" in str(failure.value)
    assert_masked(failure.value)


def test_nothing_to_erase_sends_nothing(hubspot, sendgrid):
    assert hubspot_eraser(hubspot).erase([], [], []) == {"deleted": 0, "already_gone": 0, "addresses": 0}
    assert sendgrid_eraser(sendgrid, []).erase([], ["hs-1"], ["cust-1"]) == {"suppressed": 0, "deleted": 0,
                                                                             "invalid": 0}
    assert hubspot.requests == [] and sendgrid.marketing_calls == []
