"""compute_readout (known answers, decision rules, validation, renderings, no NaN for any counts) and
the `python -m dagster_project.experiments readout` CLI on a CSV with unusual column names."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_
from scipy import stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests

from dagster_project.experiments import (
    ArmTotals,
    ComparisonRow,
    MetricSpec,
    MetricTotals,
    ReadoutOptions,
    compute_readout,
)
from dagster_project.experiments.__main__ import main
from dagster_project.experiments.csv_source import CsvInputError, read_arm_totals

ROOT = Path(__file__).resolve().parents[1]
CLICKED, REVENUE = MetricSpec("clicked", "binary"), MetricSpec("revenue", "continuous")


def raw_experiment(seed: int = 7) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """arm -> (clicked 0/1 per unit, revenue per unit)."""
    rng = np.random.default_rng(seed)
    arms = {}
    for arm, size, rate, spend in [("control", 4000, 0.10, 20.0), ("B", 4100, 0.125, 21.0), ("C", 3900, 0.10, 26.0)]:
        clicked = (rng.random(size) < rate).astype(float)
        arms[arm] = (clicked, clicked * rng.gamma(2.0, spend / 2, size))
    return arms


def totals_of(raw: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[ArmTotals]:
    return [ArmTotals(arm, len(clicked), {"clicked": MetricTotals.of(clicked), "revenue": MetricTotals.of(revenue)})
            for arm, (clicked, revenue) in raw.items()]


# --- known answers -----------------------------------------------------------------------------------

def test_readout_rows_match_scipy_and_statsmodels_references():
    raw = raw_experiment()
    readout = compute_readout(totals_of(raw), "control", [CLICKED, REVENUE])
    assert [(r.variant, r.metric) for r in readout.rows] == [("B", "clicked"), ("B", "revenue"),
                                                              ("C", "clicked"), ("C", "revenue")]
    a_clicked, a_revenue = raw["control"]
    for row in readout.rows:
        b_clicked, b_revenue = raw[row.variant]
        if row.metric == "clicked":
            a_s, b_s = int(a_clicked.sum()), int(b_clicked.sum())
            reference = sm_proportion.test_proportions_2indep(b_s, len(b_clicked), a_s, len(a_clicked),
                                                              method="wald", compare="diff")
            chi = stats.chi2_contingency([[a_s, len(a_clicked) - a_s], [b_s, len(b_clicked) - b_s]], correction=False)
            assert row.p_value == pytest.approx(reference.pvalue, rel=1e-6)
            assert row.chi_square_p_value == pytest.approx(chi.pvalue, rel=1e-6)
            assert row.control_value == pytest.approx(a_clicked.mean(), rel=1e-12)
        else:
            reference = stats.ttest_ind(b_revenue, a_revenue, equal_var=False)
            interval = reference.confidence_interval(0.95)
            assert row.p_value == pytest.approx(reference.pvalue, rel=1e-6)
            assert (row.difference_low, row.difference_high) == pytest.approx((interval.low, interval.high), rel=1e-6)
            assert row.chi_square_p_value is None
        assert row.difference == pytest.approx(row.variant_value - row.control_value, rel=1e-12)
        assert row.relative_lift == pytest.approx(row.difference / row.control_value, rel=1e-12)
        assert row.relative_low < row.relative_lift < row.relative_high
        assert 0 < row.chance_to_win < 1 and row.expected_loss >= 0
    holm = multipletests([r.p_value for r in readout.rows], method="holm")[1]
    assert [r.adjusted_p_value for r in readout.rows] == pytest.approx(holm.tolist(), rel=1e-9)
    assert [r.is_significant for r in readout.rows] == [p < 0.05 for p in holm]


def test_benjamini_hochberg_and_no_correction():
    arms = totals_of(raw_experiment())
    raw_p = [r.p_value for r in compute_readout(arms, "control", [CLICKED, REVENUE]).rows]
    bh = compute_readout(arms, "control", [CLICKED, REVENUE], ReadoutOptions(correction="bh"))
    none = compute_readout(arms, "control", [CLICKED, REVENUE], ReadoutOptions(correction="none"))
    assert [r.adjusted_p_value for r in bh.rows] == pytest.approx(multipletests(raw_p, method="fdr_bh")[1].tolist())
    assert [r.adjusted_p_value for r in none.rows] == raw_p


def test_clear_effects_are_significant_and_the_direction_is_reported():
    arms = [ArmTotals("A", 20_000, {"clicked": MetricTotals.binary(2000)}),
            ArmTotals("B", 20_000, {"clicked": MetricTotals.binary(2400)}),
            ArmTotals("C", 20_000, {"clicked": MetricTotals.binary(1600)}),
            ArmTotals("D", 20_000, {"clicked": MetricTotals.binary(2010)})]
    readout = compute_readout(arms, "A", [CLICKED])
    verdict = {r.variant: r.is_significant for r in readout.rows}
    assert verdict == {"B": True, "C": True, "D": False}
    table = readout.to_table()
    assert "significant increase" in table and "significant decrease" in table and "not significant" in table


def test_sequential_rule_is_adjusted_p_below_alpha_and_then_the_interval_excludes_zero():
    arms = totals_of(raw_experiment())
    fixed = compute_readout(arms, "control", [CLICKED, REVENUE])
    sequential = compute_readout(arms, "control", [CLICKED, REVENUE], ReadoutOptions(sequential=True))
    for f, s in zip(fixed.rows, sequential.rows):
        assert s.p_value >= f.p_value  # always-valid p-values are more conservative
        assert (s.difference_high - s.difference_low) > (f.difference_high - f.difference_low)
        assert s.is_significant == (s.adjusted_p_value < 0.05)
        if s.is_significant:
            assert s.difference_low > 0 or s.difference_high < 0
        assert (s.p_value < 0.05) == (s.difference_low > 0 or s.difference_high < 0)


def test_yates_option_changes_only_the_chi_square_p_value():
    arms = [ArmTotals("A", 10, {"clicked": MetricTotals.binary(3)}),
            ArmTotals("B", 12, {"clicked": MetricTotals.binary(7)})]
    plain = compute_readout(arms, "A", [CLICKED]).rows[0]
    yates = compute_readout(arms, "A", [CLICKED], ReadoutOptions(yates=True)).rows[0]
    assert yates.chi_square_p_value == pytest.approx(stats.chi2_contingency([[3, 7], [7, 5]], correction=True).pvalue)
    assert yates.p_value == plain.p_value


# --- sample ratio mismatch ------------------------------------------------------------------------

def _split(a: int, b: int) -> list[ArmTotals]:
    return [ArmTotals("A", a, {"clicked": MetricTotals.binary(a // 10)}),
            ArmTotals("B", b, {"clicked": MetricTotals.binary(b // 10)})]


def test_srm_blocks_decisions_on_a_skewed_split_and_not_on_a_fair_one():
    skewed = compute_readout(_split(5300, 4700), "A", [CLICKED])
    fair = compute_readout(_split(5000, 5000), "A", [CLICKED])
    assert skewed.has_srm and skewed.srm_p_value == pytest.approx(stats.chisquare([5300, 4700]).pvalue)
    assert not fair.has_srm
    assert "decisions blocked" in skewed.to_table() and "blocked: SRM" in skewed.to_markdown()
    assert "no sample ratio mismatch" in fair.to_table()


def test_srm_uses_the_intended_weights():
    intended = compute_readout(_split(9000, 1000), "A", [CLICKED], ReadoutOptions(weights={"A": 90, "B": 10}))
    assert not intended.has_srm
    assert compute_readout(_split(9000, 1000), "A", [CLICKED]).has_srm


# --- validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("arms, control, metrics, options, message", [
    (_split(10, 10), "Z", [CLICKED], ReadoutOptions(), "control 'Z' is not among the arms"),
    (_split(10, 10)[:1], "A", [CLICKED], ReadoutOptions(), "at least 2 arms"),
    (_split(10, 10), "A", [REVENUE], ReadoutOptions(), "no totals for metric 'revenue'"),
    (_split(10, 10), "A", [CLICKED], ReadoutOptions(weights={"A": 1, "B": 1, "X": 1}), "unknown arm(s) 'X'"),
    (_split(10, 10), "A", [CLICKED], ReadoutOptions(weights={"A": 1, "B": 0}), "positive"),
    (_split(10, 10), "A", [CLICKED], ReadoutOptions(weights={"A": 1}), "missing: 'B'"),
    ([ArmTotals("A", 5, {"clicked": MetricTotals.binary(6)}), ArmTotals("B", 5, {"clicked": MetricTotals.binary(1)})],
     "A", [CLICKED], ReadoutOptions(), "outside [0, 5]"),
    ([ArmTotals("A", 5, {"clicked": MetricTotals(2, 4)}), ArmTotals("B", 5, {"clicked": MetricTotals.binary(1)})],
     "A", [CLICKED], ReadoutOptions(), "really binary"),
    (_split(10, 10) + _split(10, 10)[:1], "A", [CLICKED], ReadoutOptions(), "more than once"),
    (_split(10, 10), "A", [CLICKED, CLICKED], ReadoutOptions(), "metric(s) listed more than once"),
])
def test_invalid_readouts_raise_a_value_error_naming_the_problem(arms, control, metrics, options, message):
    with pytest.raises(ValueError) as raised:
        compute_readout(arms, control, metrics, options)
    assert message in str(raised.value)


@pytest.mark.parametrize("kwargs", [{"alpha": 0}, {"alpha": 1.5}, {"correction": "bonferroni"},
                                    {"sequential_tuning": 0}, {"srm_threshold": 2}])
def test_invalid_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        ReadoutOptions(**kwargs)


def test_metric_spec_parse():
    assert MetricSpec.parse("clicked:binary") == CLICKED
    assert MetricSpec.parse("€ revenue:Continuous") == MetricSpec("€ revenue", "continuous")
    assert MetricSpec.parse("a:b:binary") == MetricSpec("a:b", "binary")
    for text in ["clicked", "clicked:count", ":binary", ""]:
        with pytest.raises(ValueError, match="binary"):
            MetricSpec.parse(text)


def test_arm_totals_merge_adds_up_and_refuses_other_arms():
    first = ArmTotals("A", 3, {"m": MetricTotals(2.0, 4.0)})
    second = ArmTotals("A", 2, {"m": MetricTotals(1.0, 1.0), "n": MetricTotals.binary(1)})
    assert first.merge(second) == ArmTotals("A", 5, {"m": MetricTotals(3.0, 5.0), "n": MetricTotals(1.0, 1.0)})
    with pytest.raises(ValueError, match="cannot merge"):
        first.merge(ArmTotals("B", 1))
    with pytest.raises(ValueError, match="units"):
        ArmTotals("A", -1)
    with pytest.raises(ValueError, match="finite"):
        MetricTotals(float("nan"), 0.0)


# --- zero units and any counts: never NaN --------------------------------------------------------------

def test_zero_unit_arms_give_p_one_no_intervals_and_finite_json():
    arms = [ArmTotals("A", 1000, {"clicked": MetricTotals.binary(100), "revenue": MetricTotals(500.0, 9000.0)}),
            ArmTotals("B", 0, {"clicked": MetricTotals.binary(0), "revenue": MetricTotals(0.0, 0.0)}),
            ArmTotals("C", 1000, {"clicked": MetricTotals.binary(0), "revenue": MetricTotals(0.0, 0.0)})]
    for options in (ReadoutOptions(), ReadoutOptions(sequential=True)):
        readout = compute_readout(arms, "A", [CLICKED, REVENUE], options)
        for row in readout.rows:
            if row.variant == "B":
                assert row.p_value == 1.0 and not row.is_significant
                assert row.difference_low is None and row.relative_low is None
        json.dumps(readout.to_dict(), allow_nan=False)
        assert readout.to_table() and readout.to_markdown() and readout.to_csv()


units_strategy = st_.one_of(st_.integers(0, 3), st_.integers(0, 10_000_000))


@st_.composite
def arm_totals(draw, name: str) -> ArmTotals:
    units = draw(units_strategy)
    successes = draw(st_.integers(0, units))
    if units == 0:
        revenue = MetricTotals(0.0, 0.0)
    else:
        mean = draw(st_.floats(-1e6, 1e6, allow_nan=False))
        sd = draw(st_.floats(0, 1e6, allow_nan=False))
        revenue = MetricTotals(units * mean, (units - 1) * sd * sd + units * mean * mean)
    return ArmTotals(name, units, {"clicked": MetricTotals.binary(successes), "revenue": revenue})


@settings(max_examples=60, deadline=None)
@given(arms=st_.tuples(arm_totals("A"), arm_totals("B"), arm_totals("C")), sequential=st_.booleans(),
       correction=st_.sampled_from(["holm", "bh", "none"]))
def test_readout_never_produces_nan_or_infinity(arms, sequential, correction):
    readout = compute_readout(list(arms), "A", [CLICKED, REVENUE],
                              ReadoutOptions(sequential=sequential, correction=correction))
    document = readout.to_dict()
    json.dumps(document, allow_nan=False)  # raises on NaN or infinity
    for row in document["rows"]:
        assert 0.0 <= row["p_value"] <= row["adjusted_p_value"] <= 1.0
        for key in ("chance_to_win", "chi_square_p_value"):
            assert row[key] is None or 0.0 <= row[key] <= 1.0
    assert 0.0 <= document["srm_p_value"] <= 1.0


# --- renderings ---------------------------------------------------------------------------------------

def test_renderings_show_every_comparison():
    readout = compute_readout(totals_of(raw_experiment()), "control", [CLICKED, REVENUE])
    markdown = readout.to_markdown().splitlines()
    table_rows = [line for line in markdown if line.startswith("| ") and "variant" not in line]
    assert len(table_rows) == 4 and all(line.count(" | ") == 13 for line in table_rows)

    table = readout.to_table().splitlines()
    header = next(line for line in table if line.startswith("variant"))
    column = header.index("decision")
    body = table[table.index(header) + 2:]
    assert len(body) == 4
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in body)  # columns line up

    parsed = list(csv.DictReader(io.StringIO(readout.to_csv())))
    assert list(parsed[0]) == [f.name for f in fields(ComparisonRow)] + ["srm_p_value", "has_srm"]
    assert [float(r["p_value"]) for r in parsed] == [r.p_value for r in readout.rows]


def test_markdown_escapes_pipes_in_names():
    arms = [ArmTotals("A|1", 100, {"c|x": MetricTotals.binary(10)}),
            ArmTotals("B", 100, {"c|x": MetricTotals.binary(12)})]
    markdown = compute_readout(arms, "A|1", [MetricSpec("c|x", "binary")]).to_markdown()
    row = next(line for line in markdown.splitlines() if line.startswith("| B"))
    assert "c\\|x" in row and row.count(" | ") == 13


# --- the CSV source ----------------------------------------------------------------------------------

ARM, CLICK, SPEND = "Arm / Gruppe", "clicked?", "€ revenue"
CLI_CONTROL = "Kontrolle"
CLI_ARMS = {CLI_CONTROL: "control", "Variante B": "B", "Variante C ü": "C"}


def write_experiment_csv(path: Path, raw: dict, *, bad_line: str | None = None) -> None:
    """Rows of `raw` under unusual column names, with a free-text column holding commas, quotes and
    newlines, and cells spelled in every accepted way."""
    spellings = {1.0: ["1", "true", "YES", " Yes "], 0.0: ["0", "false", "no", ""]}
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write("\ufeff")
        writer = csv.writer(handle)
        writer.writerow([ARM, "note, \"free\" text", CLICK, SPEND])
        index = 0
        for cli_arm, arm in CLI_ARMS.items():
            clicked, revenue = raw[arm]
            for c, r in zip(clicked, revenue):
                index += 1
                note = "line one\nline two, \"quoted\"" if index % 97 == 0 else ""
                writer.writerow([cli_arm, note, spellings[c][index % 4], "" if r == 0 else repr(float(r))])
                if bad_line is not None and index == 1234:
                    handle.write(bad_line)


def cli_totals(raw: dict) -> list[ArmTotals]:
    return [ArmTotals(cli_arm, len(raw[arm][0]),
                      {CLICK: MetricTotals.of(raw[arm][0]), SPEND: MetricTotals.of(raw[arm][1])})
            for cli_arm, arm in sorted(CLI_ARMS.items())]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dagster_project.experiments", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def readout_args(path: Path, *extra: str) -> list[str]:
    return ["readout", str(path), "--variant-column", ARM, "--control", CLI_CONTROL,
            "--metric", f"{CLICK}:binary", "--metric", f"{SPEND}:continuous", *extra]


@pytest.mark.parametrize("name", ["units.csv", "units.csv.gz"])
def test_csv_source_streams_the_same_totals_as_the_raw_values(tmp_path, name):
    raw = raw_experiment()
    write_experiment_csv(tmp_path / name, raw)
    metrics = [MetricSpec(CLICK, "binary"), MetricSpec(SPEND, "continuous")]
    totals, rows = read_arm_totals(tmp_path / name, ARM, metrics, block_bytes=4096)  # many small blocks
    assert rows == sum(len(c) for c, _ in raw.values())
    expected = cli_totals(raw)
    assert [t.arm for t in totals] == [t.arm for t in expected]
    for got, want in zip(totals, expected):
        assert got.units == want.units
        for metric in (CLICK, SPEND):
            assert got.metrics[metric].total == pytest.approx(want.metrics[metric].total, rel=1e-12)
            assert got.metrics[metric].total_squares == pytest.approx(want.metrics[metric].total_squares, rel=1e-12)


@pytest.mark.parametrize("cell, problem", [("maybe", "a binary metric must be"), ("2", "a binary metric must be")])
def test_csv_source_rejects_bad_binary_cells_with_file_line_and_column(tmp_path, cell, problem):
    path = tmp_path / "bad.csv"
    path.write_text(f"arm,clicked\nA,1\nB,0\n\"A\",\"{cell}\"\nB,1\n", encoding="utf-8")
    with pytest.raises(CsvInputError) as raised:
        read_arm_totals(path, "arm", [MetricSpec("clicked", "binary")])
    assert f"{path}: line 4, column 'clicked': {problem}" in str(raised.value)
    assert repr(cell) in str(raised.value)


@pytest.mark.parametrize("cell, problem", [("12,5", "not a number"), ("inf", "not a finite number"),
                                           ("1e999", "not a finite number")])
def test_csv_source_rejects_bad_numbers(tmp_path, cell, problem):
    path = tmp_path / "bad.csv"
    path.write_text(f"arm,note,revenue\nA,\"two\nlines\",1.5\nB,,\n\"A\",x,\"{cell}\"\n", encoding="utf-8")
    with pytest.raises(CsvInputError) as raised:
        read_arm_totals(path, "arm", [MetricSpec("revenue", "continuous")])
    assert f"line 5, column 'revenue': {problem}" in str(raised.value)  # the quoted newline counts as a line


def test_csv_source_rejects_empty_arms_ragged_rows_empty_files_and_non_utf8(tmp_path):
    cases = {
        "arm,clicked\nA,1\n ,0\n": "line 3, column 'arm': the arm is empty",
        "arm,clicked\nA,1\nB,0,7\n": "line 3: CSV parse error",
        "": "the file is empty",
    }
    for text, message in cases.items():
        path = tmp_path / "case.csv"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(CsvInputError) as raised:
            read_arm_totals(path, "arm", [MetricSpec("clicked", "binary")])
        assert message in str(raised.value)
    path = tmp_path / "latin1.csv"
    path.write_bytes("arm,clicked\nA,1\nGr\xfcn,0\n".encode("latin-1"))
    with pytest.raises(CsvInputError, match="UTF-8"):
        read_arm_totals(path, "arm", [MetricSpec("clicked", "binary")])


@settings(max_examples=150, deadline=None)
@given(body=st_.binary(max_size=2000),
       header=st_.sampled_from([b"arm,clicked,revenue\n", b"", b"\xef\xbb\xbfarm,clicked,revenue\n"]))
def test_any_bytes_give_totals_or_a_clear_error(tmp_path_factory, body, header):
    """Hostile files (any bytes, encodings, quoting, line endings): the reader either counts every data
    row into an arm or stops with CsvInputError; nothing else escapes."""
    path = tmp_path_factory.mktemp("hostile") / "units.csv"
    path.write_bytes(header + body)
    metrics = [MetricSpec("clicked", "binary"), MetricSpec("revenue", "continuous")]
    try:
        totals, rows = read_arm_totals(path, "arm", metrics, block_bytes=256)
    except CsvInputError as error:
        assert str(error)
        return
    assert sum(arm.units for arm in totals) == rows


# --- the CLI ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def experiment_csv(tmp_path_factory) -> tuple[Path, dict]:
    raw = raw_experiment()
    path = tmp_path_factory.mktemp("cli") / "units.csv"
    write_experiment_csv(path, raw)
    return path, raw


def test_cli_json_equals_compute_readout_on_the_same_totals(experiment_csv):
    path, raw = experiment_csv
    result = run_cli(*readout_args(path, "--format", "json", "--sequential", "--correction", "bh"))
    assert result.returncode == 0, result.stderr
    metrics = [MetricSpec(CLICK, "binary"), MetricSpec(SPEND, "continuous")]
    expected = compute_readout(cli_totals(raw), CLI_CONTROL, metrics,
                               ReadoutOptions(sequential=True, correction="bh")).to_dict()
    _assert_close(json.loads(result.stdout), expected)


def _assert_close(got, want, where="$"):
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    else:
        assert got == want, where


def test_cli_table_and_csv_formats(experiment_csv):
    path, _ = experiment_csv
    table = run_cli(*readout_args(path))
    assert table.returncode == 0, table.stderr
    assert f"{path}: 12,000 rows, 3 arms" in table.stdout
    assert "no sample ratio mismatch" in table.stdout
    for text in ["Variante B", "Variante C ü", CLICK, SPEND, "chance to win", "adjusted p"]:
        assert text in table.stdout

    result = run_cli(*readout_args(path, "--format", "csv", "--alpha", "0.01"))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["variant"], r["metric"]) for r in rows] == [("Variante B", CLICK), ("Variante B", SPEND),
                                                          ("Variante C ü", CLICK), ("Variante C ü", SPEND)]
    assert all(r["is_significant"] == str(float(r["adjusted_p_value"]) < 0.01) for r in rows)


def test_cli_weights_and_srm_decision(experiment_csv):
    path, _ = experiment_csv
    result = run_cli(*readout_args(path, "--weights", f"{CLI_CONTROL}=80,Variante B=10,Variante C ü=10"))
    assert result.returncode == 0, result.stderr
    assert "decisions blocked" in result.stdout and "blocked: SRM" in result.stdout


def test_cli_bad_cell_exits_2_with_file_line_column_and_a_shortened_value(tmp_path):
    path = tmp_path / "bad.csv.gz"
    write_experiment_csv(path, raw_experiment(), bad_line=f"Kontrolle,,{'n' * 500},3\n")
    result = run_cli(*readout_args(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith(f"error: {path}: line ")
    assert f"column '{CLICK}': a binary metric must be" in message and "nnn…" in message and len(message) < 400


def test_cli_missing_column_and_unknown_control_exit_2_with_what_exists(experiment_csv):
    path, _ = experiment_csv
    missing = run_cli("readout", str(path), "--variant-column", "arm", "--control", CLI_CONTROL, "--metric", "x:binary")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "no column 'arm', 'x'" in missing.stderr and f"'{ARM}'" in missing.stderr and f"'{SPEND}'" in missing.stderr

    unknown = main(readout_args(path)[:4] + ["--control", "Nobody", "--metric", f"{CLICK}:binary"])
    assert unknown == 2


def test_cli_help_and_argument_errors():
    result = run_cli("readout", "--help")
    assert result.returncode == 0
    for flag in ["--variant-column", "--metric", "--weights", "--sequential-tuning", "--correction", "--format"]:
        assert flag in result.stdout
    assert run_cli("readout", "x.csv", "--variant-column", "a", "--control", "b", "--metric", "m:count").returncode == 2
