"""When a canary propensity model version replaces the serving one, and when it is rolled back
(docs/design/predictive.md, section 6). Pure: numbers in, a verdict out.

Each version is measured on the customers it served, over the closed 7-day windows since the canary
started (marts.propensity_online_metrics, population "served"). Windows are pooled by weighting each
window's AUC with its positive x negative pairs: the AUC over the pairs within a window, so a week with
a different click rate does not pass for ranking skill.

    roll back   the canary's AUC is more than 5% below the serving version's (auc_canary < 0.95 x
                auc_serving), once each has MIN_POSITIVES positives
    promote     after PROMOTE_AFTER_WINDOWS windows, when the canary's AUC is no more than
                PROMOTE_TOLERANCE below the serving version's
    roll back   after GIVE_UP_AFTER_WINDOWS windows without either (a little worse, for long enough)
    wait        otherwise
"""

from __future__ import annotations

from dataclasses import dataclass

ROLLBACK_RATIO = 0.95
MIN_POSITIVES = 30
PROMOTE_AFTER_WINDOWS = 2
PROMOTE_TOLERANCE = 0.005
GIVE_UP_AFTER_WINDOWS = 4

PROMOTE, ROLL_BACK, WAIT = "promote", "rollback", "wait"


@dataclass(frozen=True)
class WindowMetric:
    """One closed window of one version on the customers it served."""

    customers: int
    positives: int
    auc: float | None  # None when the window had only one class


@dataclass(frozen=True)
class ArmMetric:
    windows: int
    customers: int
    positives: int
    auc: float | None

    def as_evidence(self) -> dict:
        return {"windows": self.windows, "customers": self.customers, "positives": self.positives,
                "auc": self.auc}


@dataclass(frozen=True)
class Verdict:
    action: str  # PROMOTE, ROLL_BACK or WAIT
    rule: str
    reason: str


def pooled(windows: list[WindowMetric]) -> ArmMetric:
    """The windows' AUCs weighted by their positive x negative pairs."""
    pairs = [(w.positives * (w.customers - w.positives), w.auc) for w in windows if w.auc is not None]
    weight = sum(p for p, _ in pairs)
    return ArmMetric(windows=len(windows), customers=sum(w.customers for w in windows),
                     positives=sum(w.positives for w in windows),
                     auc=sum(p * auc for p, auc in pairs) / weight if weight else None)


def verdict(canary: ArmMetric, serving: ArmMetric) -> Verdict:
    thin = [(name, arm.positives) for name, arm in (("canary", canary), ("serving", serving))
            if arm.positives < MIN_POSITIVES or arm.auc is None]
    if thin:
        return Verdict(WAIT, "evidence", "waiting for evidence: " + ", ".join(
            f"the {name} version has {positives} positives of the {MIN_POSITIVES} needed" for name, positives in thin))
    if canary.auc < ROLLBACK_RATIO * serving.auc:
        return Verdict(ROLL_BACK, "worse_online", (
            f"the canary's online AUC {canary.auc:.3f} is more than {1 - ROLLBACK_RATIO:.0%} below the serving "
            f"version's {serving.auc:.3f} ({canary.positives} and {serving.positives} positives)"))
    if canary.windows >= PROMOTE_AFTER_WINDOWS and canary.auc >= serving.auc - PROMOTE_TOLERANCE:
        return Verdict(PROMOTE, "not_worse_online", (
            f"over {canary.windows} closed windows the canary's online AUC {canary.auc:.3f} is not worse than the "
            f"serving version's {serving.auc:.3f} (tolerance {PROMOTE_TOLERANCE})"))
    if canary.windows >= GIVE_UP_AFTER_WINDOWS:
        return Verdict(ROLL_BACK, "not_better_in_time", (
            f"after {canary.windows} closed windows the canary's online AUC {canary.auc:.3f} is still below the "
            f"serving version's {serving.auc:.3f} by more than {PROMOTE_TOLERANCE}"))
    return Verdict(WAIT, "evidence", (
        f"{canary.windows} of {PROMOTE_AFTER_WINDOWS} closed windows; online AUC canary {canary.auc:.3f}, "
        f"serving {serving.auc:.3f}"))
