"""Send-time optimization's marts (marts.send_time_curves, marts.customer_send_times) against the
estimator written out in plain Python (send_time_reference.py), row for row, on both engines."""

from __future__ import annotations

import pytest
from send_time_reference import RATE, Priors, curves, customer_send_times

from dagster_project.warehouse import Warehouse

pytestmark = pytest.mark.postgres  # both engines, through the session's built templates


def _settled_exposures(conn) -> tuple[list[tuple], dict[str, str]]:
    exposures = conn.fetchall(
        "SELECT customer_id, local_dow, local_hour, is_responded FROM intermediate.int_send_time_exposures "
        "WHERE is_settled")
    segments = dict(conn.fetchall("SELECT customer_id, segment_key FROM marts.customer_segments"))
    return exposures, segments


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_send_time_marts_equal_the_reference_estimator(built_templates, kind):
    with Warehouse(built_templates(kind).settings).connect() as conn:
        exposures, segments = _settled_exposures(conn)
        built_curves = {
            (row[0], row[2], row[3]): (row[1], *row[4:])
            for row in conn.fetchall(
                "SELECT level_key, level, local_dow, local_hour, level_exposures, exposures, responses, "
                "smoothed_exposures, smoothed_responses, rate, has_enough_evidence FROM marts.send_time_curves")
        }
        built_customers = {
            (row[0], row[3]): (row[1], row[2], *row[4:])
            for row in conn.fetchall(
                "SELECT customer_id, segment_key, source, local_hour, exposures, responses, hour_exposures, "
                "hour_responses, smoothed_responses, smoothed_expected_ppm, response_level, lift, weekday_score, "
                "is_best_weekday_hour FROM marts.customer_send_times")
        }
    assert len(exposures) > 500  # the sample has history to learn from
    expected_curves = curves(exposures, segments)
    assert built_curves == expected_curves
    expected_customers = customer_send_times(exposures, segments, expected_curves)
    assert built_customers == expected_customers
    sources = {row[1] for row in expected_customers.values()}
    assert {"customer", "global"} <= sources or {"customer", "segment"} <= sources


# The estimator's behaviour, on the smallest data that shows it. The reference is the SQL, row for row
# (above), so these hold for the marts too.

MONDAY, WEDNESDAY = 1, 3


def _best_hour(rows: dict, customer_id: str) -> int:
    return next(hour for (customer, hour), row in rows.items() if customer == customer_id and row[-1])


def test_the_kernel_is_circular_midnight_neighbours_eleven_pm():
    exposures = [("a", MONDAY, 23, True), ("a", MONDAY, 23, True), ("a", MONDAY, 12, False), ("a", MONDAY, 12, False)]
    curve = curves(exposures, {"a": "s"})
    rate = lambda hour: curve[("_all", MONDAY, hour)][RATE]  # noqa: E731
    assert rate(0) > rate(11)
    assert rate(1) > rate(10)
    assert curve[("_all", MONDAY, 0)][4] == 2 * 2 * 2  # two deliveries an hour away: weight 2 x same day 2


def test_responses_are_divided_by_exposures_not_counted():
    # 3 responses of 10 deliveries at 09:00, 2 of 3 at 18:00: counting responses would pick 09:00.
    exposures = [("a", WEDNESDAY, 9, i < 3) for i in range(10)] + [("a", WEDNESDAY, 18, i < 2) for i in range(3)]
    curve = curves(exposures, {"a": "s"}, Priors(min_global_exposures=1))
    assert curve[("_all", WEDNESDAY, 18)][RATE] > curve[("_all", WEDNESDAY, 9)][RATE]
    rows = customer_send_times(exposures, {"a": "s"}, curve, Priors(min_global_exposures=1))
    assert rows[("a", 18)][1] == "customer" and _best_hour(rows, "a") == 18


def test_a_sparse_customer_gets_the_segment_hour_and_a_rich_one_their_own():
    segment = {f"c{i}": "evening" for i in range(20)} | {"sparse": "evening", "rich": "other"}
    exposures = [(f"c{i}", WEDNESDAY, 19, i % 2 == 0) for i in range(20)]
    exposures += [(f"c{i}", WEDNESDAY, 10, i % 5 == 0) for i in range(20)]
    exposures += [("sparse", WEDNESDAY, 9, True)]
    exposures += [("rich", WEDNESDAY, 9, True)] * 4 + [("rich", WEDNESDAY, 19, False)] * 4
    priors = Priors(min_segment_exposures=20, min_global_exposures=20)
    curve = curves(exposures, segment, priors)
    rows = customer_send_times(exposures, segment, curve, priors)
    assert rows[("sparse", 9)][1] == "segment" and rows[("sparse", 9)][9] == 1.0
    assert _best_hour(rows, "sparse") == 19 == _best_hour(rows, "c1")
    assert rows[("rich", 9)][1] == "customer" and _best_hour(rows, "rich") in (8, 9, 10)


def test_too_little_history_anywhere_falls_back_to_the_fixed_hour():
    exposures = [("a", MONDAY, 9, True), ("b", MONDAY, 9, False)]
    rows = customer_send_times(exposures, {}, curves(exposures, {}))
    assert {row[1] for row in rows.values()} == {"fixed"}
