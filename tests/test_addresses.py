"""One rule for addresses: the Python normalization, its SQL twin on both warehouses and the dbt macro
agree on every string, and what ingest accepts is an address a real parser reads the same way."""

from __future__ import annotations

import re
from email.headerregistry import Address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dagster_project.addresses import address_problem, normalized_address, normalized_address_sql

MACRO = Path(__file__).parents[1] / "dbt" / "macros" / "addresses.sql"
printable = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


def test_the_dbt_macro_is_the_same_sql_as_python():
    body = re.search(r"macro normalized_email\(expression\) -%\}\s*(.*?)\s*\{%- endmacro", MACRO.read_text(), re.S)
    assert body.group(1).replace("{{ expression }}", "x") == normalized_address_sql("x")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(printable, st.sampled_from([" Jane@Example.COM ", "ÄÖ@Bücher.de", "\tX@y.z",
                                                              "\xa0nbsp@x.com\u2003"])),
                       min_size=1, max_size=20))
@example(values=["\xa0nbsp@x.com\u2003"])  # DuckDB's trim() drops more than the space; PostgreSQL's does not
def test_sql_normalization_equals_python_on_both_warehouses(warehouse, values):
    with warehouse.connect() as conn:
        # One statement per batch, the values as parameters: the database's own trim/translate decide.
        rows = conn.fetchall(
            f"SELECT v, {normalized_address_sql('v')} FROM (SELECT unnest(CAST(? AS VARCHAR[])) AS v) AS t", [values])
    assert {value: normalized for value, normalized in rows} == {value: normalized_address(value) for value in values}


local_parts = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\.[A-Za-z0-9_-]{1,5}){0,2}", fullmatch=True)
domains = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True)


@given(local=local_parts, domain=domains, padding=st.sampled_from(["", " ", "  "]))
def test_accepted_addresses_read_the_same_in_the_standard_library(local, domain, padding):
    address = f"{padding}{local}@{domain}{padding}"
    assert address_problem(address) is None
    parsed = Address(addr_spec=address.strip())
    assert (parsed.username, parsed.domain) == (local, domain)


ADDRESS_ALPHABET = "abzAZ09._-+'!#~,\"<> é\t\x00"
near_addresses = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(ADDRESS_ALPHABET, max_size=12), st.text(ADDRESS_ALPHABET, max_size=12),
    st.text(ADDRESS_ALPHABET, max_size=6))


@given(text=st.one_of(near_addresses, st.text(max_size=40)))
def test_whatever_is_accepted_parses_as_one_address(text):
    """Near-misses of addresses (quotes, commas, brackets, spaces, dots, NUL around the @) and any text:
    what address_problem accepts, the standard library reads back as exactly that address (its
    parser predates RFC 6532, so non-ASCII letters stand in as 'x': the structure is what is checked)."""
    if address_problem(text) is None:
        ascii_form = "".join(c if c.isascii() else "x" for c in text.strip(" "))
        parsed = Address(addr_spec=ascii_form)
        assert f"{parsed.username}@{parsed.domain}" == ascii_form


@pytest.mark.parametrize("bad", [
    "a,b@example.com", '"quoted"@example.com', "a b@example.com", "a@exa mple.com", "a\t@example.com",
    "a\x00@example.com", "a@example.com\r\nBcc: x@y.z", "<a@example.com>", "a@example", "a@@example.com",
    "a..b@example.com", ".a@example.com", "a@-example.com", "a@example..com", "x" * 65 + "@example.com",
    "a@" + "b" * 250 + ".com", "a\u200b@example.com",
])
def test_addresses_with_commas_quotes_or_control_characters_are_refused(bad):
    assert address_problem(bad) is not None


def test_internationalized_addresses_are_valid():
    assert address_problem("jörg@bücher.de") is None
    assert normalized_address(" Jörg@Bücher.DE ") == "jörg@bücher.de"  # only ASCII is folded
