"""What a person reads about an expectation of a quality suite: a label unique within the suite, the
rows it applies to (its row_condition in words) and the note its author wrote. Built from the suite
file only, never from run-time values, so it reads the same on every run."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class ExpectationText:
    """One expectation in words: `label` says what is checked and is unique within its suite
    ("amount between 0 and 100,000"), `condition` the rows it applies to ("event_type is alias"),
    `note` what the suite's author wrote about it."""

    label: str
    condition: str | None
    note: str | None


def describe_expectations(configs) -> tuple[ExpectationText, ...]:
    """Labels from the suite file, never from run-time values, so they read the same on every run.
    Two expectations that would read alike get their condition added, then a number in suite order."""
    labels = [expectation_label(config) for config in configs]
    conditions = [condition_text(config.kwargs.get("row_condition")) for config in configs]
    repeated = Counter(labels)
    labels = [f"{label}, where {condition}" if repeated[label] > 1 and condition else label
              for label, condition in zip(labels, conditions)]
    while len(set(labels)) < len(labels):
        repeated, seen = Counter(labels), Counter()
        for position, label in enumerate(labels):
            if repeated[label] > 1:
                seen[label] += 1
                labels[position] = f"{label} (#{seen[label]})"
    return tuple(
        ExpectationText(label, condition, expectation_note(config))
        for label, condition, config in zip(labels, conditions, configs)
    )


def expectation_label(config) -> str:
    """'amount between 0 and 100,000', 'event_type in {track, page}', 'email not null'."""
    kwargs = config.kwargs
    column = kwargs.get("column")
    kind = config.type
    if kind in _COLUMN_LABELS and column is not None:
        label = f"{column} {_COLUMN_LABELS[kind](kwargs)}"
    elif kind in _TABLE_LABELS:
        label = _TABLE_LABELS[kind](kwargs)
    elif match := re.fullmatch(r"expect_column_(\w+?)_to_be_between", kind):
        statistic = _STATISTICS.get(match.group(1), match.group(1).replace("_", " "))
        label = f"{statistic} of {column} {_range(kwargs)}"
    else:
        label = _generic_label(kind, kwargs)
    mostly = kwargs.get("mostly")
    if isinstance(mostly, (int, float)) and not isinstance(mostly, bool) and mostly < 1:
        label += f" in at least {_number(round(mostly * 100, 2))}% of rows"
    return label


def condition_text(condition) -> str | None:
    """A GX row_condition in words: 'is_eligible is true and jurisdiction is EU, UK or OTHER'."""
    if condition is None or condition == "":
        return None
    if isinstance(condition, str):  # a legacy pandas/SQL filter string: shown as written
        return condition
    if not isinstance(condition, dict):  # a GX Condition object: its own repr reads well enough
        return str(condition)
    kind = condition.get("type")
    column = condition["column"].get("name") if isinstance(condition.get("column"), dict) else None
    if kind == "comparison" and column:
        operator, parameter = condition.get("operator"), condition.get("parameter")
        if operator in ("IN", "NOT_IN") and isinstance(parameter, (list, tuple)):
            values = _choices(parameter)
            return f"{column} is {values}" if operator == "IN" else f"{column} is not {values}"
        if operator in _COMPARISONS:
            return f"{column} {_COMPARISONS[operator]} {_value(parameter)}"
    if kind == "nullity" and column:
        return f"{column} has no value" if condition.get("is_null") else f"{column} has a value"
    if kind in ("and", "or") and condition.get("conditions"):
        parts = [
            f"({condition_text(part)})" if kind == "and" and _is_or(part) else condition_text(part) or ""
            for part in condition["conditions"]
        ]
        return f" {kind} ".join(parts)
    if kind == "pass_through" and condition.get("pass_through_filter"):
        return str(condition["pass_through_filter"])
    return json.dumps(condition, sort_keys=True, default=str)


def _is_or(condition) -> bool:
    return (condition.get("type") if isinstance(condition, dict) else getattr(condition, "type", None)) == "or"


def expectation_note(config) -> str | None:
    """The expectation's GX description and notes, and the suite's `meta.notes`, as one text."""
    parts: list[str] = []
    for source in (config.description, config.notes, (config.meta or {}).get("notes")):
        text = _note_text(source)
        if text and text not in parts:
            parts.append(text)
    return " ".join(parts) or None


def _note_text(source) -> str:
    if isinstance(source, dict):  # GX's older {"format": "markdown", "content": [...]}
        source = source.get("content")
    if isinstance(source, (list, tuple)):
        return " ".join(str(part).strip() for part in source if str(part).strip())
    return str(source).strip() if source else ""


def _value(value) -> str:
    """A suite value for people: parameters by name, numbers with thousands separators."""
    if isinstance(value, dict) and "$PARAMETER" in value:
        return str(value["$PARAMETER"])
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return _set(value)
    text = str(value)
    return text if text and text == text.strip() else f"'{text}'"


def _number(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}"


# A set longer than this shows its first SET_VALUES_SHOWN values and how many more.
SET_VALUES_SHOWN, SET_VALUES_MAX = 6, 8


def _shortened(values) -> list[str]:
    shown = [_value(value) for value in values]
    if len(shown) > SET_VALUES_MAX:
        shown = [*shown[:SET_VALUES_SHOWN], f"… (+{len(shown) - SET_VALUES_SHOWN:,} more)"]
    return shown


def _set(values) -> str:
    """'{a, b, c}'; a parameter by its name."""
    if isinstance(values, dict):
        return _value(values)
    return "{" + ", ".join(_shortened(list(values))) + "}"


def _choices(values) -> str:
    """'EU', 'EU or UK', 'one of EU, UK or OTHER'."""
    shown = _shortened(values)
    if len(shown) == 1:
        return shown[0]
    return ("one of " if len(shown) > 2 else "") + ", ".join(shown[:-1]) + " or " + shown[-1]


def _range(kwargs) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    above = ">" if kwargs.get("strict_min") else ">="
    below = "<" if kwargs.get("strict_max") else "<="
    if low is not None and high is not None:
        if not kwargs.get("strict_min") and not kwargs.get("strict_max"):
            return f"between {_value(low)} and {_value(high)}"
        return f"{above} {_value(low)} and {below} {_value(high)}"
    if low is not None:
        return f"{above} {_value(low)}"
    if high is not None:
        return f"{below} {_value(high)}"
    return "any value"


def _regex(kwargs, key: str = "regex") -> str:
    pattern = kwargs.get(key)
    if isinstance(pattern, dict):
        return _value(pattern)
    text = str(pattern)
    return "/" + (text if len(text) <= 40 else text[:39] + "…") + "/"


def _columns(names) -> str:
    return "(" + ", ".join(str(name) for name in names or ()) + ")" if not isinstance(names, dict) else _value(names)


_COMPARISONS = {"==": "is", "!=": "is not", "<": "is below", "<=": "is at most", ">": "is above",
                ">=": "is at least"}

_STATISTICS = {"max": "max", "min": "min", "mean": "mean", "median": "median", "sum": "sum",
               "stdev": "standard deviation", "unique_value_count": "distinct values",
               "proportion_of_unique_values": "share of distinct values",
               "proportion_of_non_null_values": "share of non-null values"}

# Expectations on one column: the text after the column name.
_COLUMN_LABELS = {
    "expect_column_to_exist": lambda kw: "exists",
    "expect_column_values_to_not_be_null": lambda kw: "not null",
    "expect_column_values_to_be_null": lambda kw: "is null",
    "expect_column_values_to_be_unique": lambda kw: "unique",
    "expect_column_values_to_be_between": _range,
    "expect_column_value_lengths_to_be_between": lambda kw: f"length {_range(kw)}",
    "expect_column_value_lengths_to_equal": lambda kw: f"length = {_value(kw.get('value'))}",
    "expect_column_values_to_be_in_set": lambda kw: f"in {_set(kw.get('value_set') or ())}",
    "expect_column_values_to_not_be_in_set": lambda kw: f"not in {_set(kw.get('value_set') or ())}",
    "expect_column_distinct_values_to_be_in_set": lambda kw: f"distinct values in {_set(kw.get('value_set') or ())}",
    "expect_column_distinct_values_to_contain_set":
        lambda kw: f"distinct values include {_set(kw.get('value_set') or ())}",
    "expect_column_distinct_values_to_equal_set": lambda kw: f"distinct values are {_set(kw.get('value_set') or ())}",
    "expect_column_most_common_value_to_be_in_set":
        lambda kw: f"most common value in {_set(kw.get('value_set') or ())}",
    "expect_column_values_to_match_regex": lambda kw: f"matches {_regex(kw)}",
    "expect_column_values_to_not_match_regex": lambda kw: f"does not match {_regex(kw)}",
    "expect_column_values_to_match_regex_list":
        lambda kw: f"matches {kw.get('match_on', 'any')} of {_set(kw.get('regex_list') or ())}",
    "expect_column_values_to_not_match_regex_list": lambda kw: f"matches none of {_set(kw.get('regex_list') or ())}",
    "expect_column_values_to_match_like_pattern": lambda kw: f"like {_value(kw.get('like_pattern'))}",
    "expect_column_values_to_not_match_like_pattern": lambda kw: f"not like {_value(kw.get('like_pattern'))}",
    "expect_column_values_to_match_strftime_format": lambda kw: f"has the format {_value(kw.get('strftime_format'))}",
    "expect_column_values_to_be_of_type": lambda kw: f"of type {_value(kw.get('type_'))}",
    "expect_column_values_to_be_in_type_list": lambda kw: f"of type in {_set(kw.get('type_list') or ())}",
    "expect_column_values_to_be_increasing": lambda kw: "increasing" + (" strictly" if kw.get("strictly") else ""),
    "expect_column_values_to_be_decreasing": lambda kw: "decreasing" + (" strictly" if kw.get("strictly") else ""),
}

# Expectations on a table or on several columns: the whole label.
_TABLE_LABELS = {
    "expect_table_row_count_to_be_between": lambda kw: f"row count {_range(kw)}",
    "expect_table_row_count_to_equal": lambda kw: f"row count = {_value(kw.get('value'))}",
    "expect_table_column_count_to_be_between": lambda kw: f"column count {_range(kw)}",
    "expect_table_column_count_to_equal": lambda kw: f"column count = {_value(kw.get('value'))}",
    "expect_table_columns_to_match_set": lambda kw: f"columns are {_set(kw.get('column_set') or ())}",
    "expect_table_columns_to_match_ordered_list": lambda kw: f"columns are {_columns(kw.get('column_list'))} in order",
    "expect_compound_columns_to_be_unique": lambda kw: f"{_columns(kw.get('column_list'))} unique together",
    "expect_select_column_values_to_be_unique_within_record":
        lambda kw: f"{_columns(kw.get('column_list'))} differ within each row",
    "expect_multicolumn_sum_to_equal":
        lambda kw: f"sum of {_columns(kw.get('column_list'))} = {_value(kw.get('sum_total'))}",
    "expect_column_pair_values_to_be_equal": lambda kw: f"{kw.get('column_A')} = {kw.get('column_B')}",
    "expect_column_pair_values_a_to_be_greater_than_b":
        lambda kw: f"{kw.get('column_A')} {'>=' if kw.get('or_equal') else '>'} {kw.get('column_B')}",
}

# Arguments that say how to run or report an expectation, not what it checks.
_HOUSEKEEPING = {"column", "row_condition", "condition_parser", "batch_id", "result_format",
                 "catch_exceptions", "include_config", "meta", "mostly", "windows"}


def _generic_label(kind: str, kwargs) -> str:
    """Any other expectation: its type in words, on its columns, with its arguments."""
    words = kind.removeprefix("expect_")
    for prefix in ("column_values_to_", "column_pair_values_", "compound_columns_to_", "multicolumn_",
                   "select_column_values_to_", "column_", "table_"):
        words = words.removeprefix(prefix)
    words = re.sub(r"^be_", "is_", re.sub(r"(^|_)to_be_", r"\1", words))  # 'is json parseable'
    subject = kwargs.get("column") or (
        _columns(kwargs["column_list"]) if kwargs.get("column_list") else
        f"{kwargs['column_A']}, {kwargs['column_B']}" if kwargs.get("column_A") else "")
    arguments = ", ".join(
        f"{name} {_value(value)}" for name, value in sorted(kwargs.items())
        if name not in _HOUSEKEEPING and name not in ("column_list", "column_A", "column_B") and value is not None
    )
    return " ".join(part for part in (subject, words.replace("_", " "), arguments and f"({arguments})") if part)
