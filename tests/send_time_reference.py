"""Send-time optimization's estimator in plain Python, written from docs/design/predictive.md (section 3)
apart from the SQL, so tests can hold marts.send_time_curves and marts.customer_send_times to it row by
row. The arithmetic follows the SQL's order of operations, so doubles agree to the last bit."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

DAYS = range(1, 8)
HOURS = range(0, 24)
RATE, EVIDENCE = 6, 7  # positions in a curve row


@dataclass(frozen=True)
class Priors:
    reach: int = 2
    prior_global: int = 20
    prior_segment: int = 50
    prior_customer: int = 3
    prior_level: int = 2
    min_exposures: int = 6
    min_responses: int = 2
    min_segment_exposures: int = 200
    min_global_exposures: int = 1000


def hour_distance(a: int, b: int) -> int:
    return min(abs(a - b), 24 - abs(a - b))


def day_weight(a: int, b: int) -> int:
    if a == b:
        return 2
    return 1 if (a >= 6) == (b >= 6) else 0


def curves(exposures: list[tuple], segment_of: dict[str, str], priors: Priors = Priors()) -> dict:
    """exposures: (customer_id, local_dow, local_hour, is_responded), settled only.
    -> {(level_key, dow, hour): (level, level_exposures, exposures, responses, smoothed_n, smoothed_r, rate,
    has_enough_evidence)}"""
    raw: dict[str, dict[tuple[int, int], list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for customer_id, dow, hour, responded in exposures:
        for level_key in (segment_of.get(customer_id, "unknown"), "_all"):
            cell = raw[level_key][(dow, hour)]
            cell[0] += 1
            cell[1] += int(responded)
    out = {}
    if not raw:
        return out
    n_all = sum(n for n, _ in raw["_all"].values())
    r_all = sum(r for _, r in raw["_all"].values())
    smoothed = {}
    for level_key, cells in raw.items():
        total = sum(n for n, _ in cells.values())
        for dow in DAYS:
            for hour in HOURS:
                sn = sr = 0
                for (d, h), (n, r) in cells.items():
                    distance = hour_distance(h, hour)
                    if distance <= priors.reach and day_weight(d, dow):
                        weight = (priors.reach + 1 - distance) * day_weight(d, dow)
                        sn += weight * n
                        sr += weight * r
                exact = cells.get((dow, hour), [0, 0])
                smoothed[(level_key, dow, hour)] = (total, exact[0], exact[1], sn, sr)
    for (level_key, dow, hour), (total, n, r, sn, sr) in smoothed.items():
        if level_key == "_all":
            rate = float(sr * n_all + priors.prior_global * r_all) / float((sn + priors.prior_global) * n_all)
            out[(level_key, dow, hour)] = ("global", total, n, r, sn, sr, rate,
                                           total >= priors.min_global_exposures)
    for (level_key, dow, hour), (total, n, r, sn, sr) in smoothed.items():
        if level_key != "_all":
            global_rate = out[("_all", dow, hour)][RATE]
            rate = (sr + priors.prior_segment * global_rate) / float(sn + priors.prior_segment)
            out[(level_key, dow, hour)] = ("segment", total, n, r, sn, sr, rate,
                                           total >= priors.min_segment_exposures)
    return out


def customer_send_times(exposures: list[tuple], segment_of: dict[str, str], curve: dict,
                        priors: Priors = Priors()) -> dict:
    """-> {(customer_id, hour): (segment_key, source, exposures, responses, hour_exposures, hour_responses,
    smoothed_responses, smoothed_expected_ppm, response_level, lift, weekday_score, is_best_weekday_hour)}"""
    by_customer: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for customer_id, dow, hour, responded in exposures:
        segment = segment_of.get(customer_id, "unknown")
        expected_ppm = math.floor(curve[(segment, dow, hour)][RATE] * 1000000)
        by_customer[customer_id].append((hour, int(responded), expected_ppm))
    out = {}
    for customer_id, deliveries in by_customer.items():
        segment = segment_of.get(customer_id, "unknown")
        n = len(deliveries)
        y = sum(responded for _, responded, _ in deliveries)
        e = sum(ppm for _, _, ppm in deliveries)
        if n >= priors.min_exposures and y >= priors.min_responses:
            source = "customer"
        elif curve[(segment, 1, 0)][EVIDENCE]:
            source = "segment"
        elif curve[("_all", 1, 0)][EVIDENCE]:
            source = "global"
        else:
            source = "fixed"
        level = float((y + priors.prior_level) * 1000000) / float(e + priors.prior_level * 1000000)
        rows = {}
        for hour in HOURS:
            near = [(priors.reach + 1 - hour_distance(h, hour), responded, ppm) for h, responded, ppm in deliveries
                    if hour_distance(h, hour) <= priors.reach]
            smoothed_y = sum(weight * responded for weight, responded, _ in near)
            smoothed_e = sum(weight * ppm for weight, _, ppm in near)
            if source == "customer":
                lift = (float(smoothed_y) * 1000000 + priors.prior_customer * 1000000 * level) / float(
                    smoothed_e + priors.prior_customer * 1000000)
            else:
                lift = 1.0
            base = curve[("_all" if source == "global" else segment, 3, hour)][RATE]
            exact = [(responded) for h, responded, _ in deliveries if h == hour]
            rows[hour] = [segment, source, n, y, len(exact), sum(exact), smoothed_y, smoothed_e, level, lift,
                          base * lift]
        best = min(range(8, 21), key=lambda hour: (-rows[hour][-1], hour))
        for hour, row in rows.items():
            out[(customer_id, hour)] = (*row, hour == best)
    return out
