"""meta.campaign.send_time: when a campaign's messages go out (see dbt/models/campaigns/_campaigns.yml
for the keys and docs/design/predictive.md, section 4)."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from reverse_etl.destinations.sendgrid import CANCEL_DEADLINE, MAX_SCHEDULE_AHEAD

SEND_TIME_MODES = ("best_hour", "fixed", "optimized")
# SendGrid holds a scheduled message at most 72 h, and a batch must stay cancellable: 71 whole hours.
MAX_HORIZON_HOURS = (MAX_SCHEDULE_AHEAD - CANCEL_DEADLINE) // timedelta(hours=1)
# The keys each mode uses; any other would be silently ignored, so it is refused instead.
MODE_KEYS = {
    "best_hour": ("mode",),
    "fixed": ("mode", "fixed_hour", "horizon_hours"),
    "optimized": ("mode", "fixed_hour", "holdout_share", "exploration_share", "horizon_hours"),
}


@dataclass(frozen=True)
class SendTimeSpec:
    """best_hour: today's behaviour, each customer's best_send_hour clamped into the send window.
    fixed: everyone at local fixed_hour. optimized: the best slot of the send-time curves within
    horizon_hours, with holdout_share at the fixed hour (the control) and exploration_share at a
    random allowed slot (coverage for the hours the curves would never choose)."""

    mode: str
    fixed_hour: int
    holdout_share: float = 0.1
    exploration_share: float = 0.1
    horizon_hours: int = 24


def default_fixed_hour(send_window: tuple[int, int]) -> int:
    """Two hours after the window opens (10:00 for the usual 8-20, a common newsletter hour, past the
    morning's first inbox sweep), clamped into the window."""
    start, end = send_window
    return min(start + 2, end - 1)


def parse_send_time(spec, campaign_type: str, send_window: tuple[int, int],
                    fail: Callable[[str, str], Exception]) -> SendTimeSpec:
    """meta.campaign.send_time of a campaign of `campaign_type` with `send_window` (start, end hours):
    absent is best_hour; a mode name is that mode with the defaults; a mapping sets them. `fail(key,
    problem)` makes the error that names the model and key."""
    start, end = send_window
    if spec is None:
        return SendTimeSpec("best_hour", default_fixed_hour(send_window))
    mode_key = "send_time" if isinstance(spec, str) else "send_time.mode"
    if isinstance(spec, str):
        spec = {"mode": spec}
    if not isinstance(spec, dict):
        raise fail("send_time", f"must be one of {', '.join(SEND_TIME_MODES)} or a mapping of settings, "
                                f"not {spec!r}")
    unknown = sorted(set(spec) - set(MODE_KEYS["optimized"]), key=str)
    if unknown:
        raise fail("send_time", f"has unknown key(s) {', '.join(map(str, unknown))}; the keys are "
                                f"{', '.join(MODE_KEYS['optimized'])}")
    if "mode" not in spec:
        raise fail("send_time.mode", f"is required: one of {', '.join(SEND_TIME_MODES)}")
    mode = spec["mode"]
    if mode not in SEND_TIME_MODES:
        raise fail(mode_key, f"must be one of {', '.join(SEND_TIME_MODES)}, not {mode!r}")
    if mode != "best_hour" and campaign_type == "journey":
        raise fail("send_time", f"{mode} is for batch and trigger campaigns; journey sends keep their step "
                                "timing: drop send_time")
    for key in spec:
        if key not in MODE_KEYS[mode]:
            raise fail(f"send_time.{key}", f"does not apply to mode {mode} (it takes "
                                           f"{', '.join(MODE_KEYS[mode])}); drop it or change the mode")

    def whole(key: str, default: int) -> int:
        value = spec.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"send_time.{key}", f"must be a whole number of hours, not {value!r}")
        return value

    def share(key: str) -> float:
        value = spec.get(key, 0.1)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
            raise fail(f"send_time.{key}", f"must be a number from 0 up to (not including) 1, not {value!r}")
        return float(value)

    fixed_hour = whole("fixed_hour", default_fixed_hour(send_window))
    if not start <= fixed_hour < end:
        raise fail("send_time.fixed_hour", f"{fixed_hour} is outside send_window {start}-{end}; pick an hour the "
                                           f"window allows ({start} to {end - 1})")
    horizon = whole("horizon_hours", 24)
    if not 1 <= horizon <= MAX_HORIZON_HOURS:
        raise fail("send_time.horizon_hours", f"must be between 1 and {MAX_HORIZON_HOURS} (SendGrid holds a message "
                                              f"at most 72 h, less the 10-minute cancel margin), not {horizon}")
    holdout, exploration = share("holdout_share"), share("exploration_share")
    if holdout + exploration >= 0.5:
        raise fail("send_time.holdout_share", f"+ exploration_share must be below 0.5 (most of the audience gets the "
                                              f"optimized time), not {holdout + exploration:g}")
    return SendTimeSpec(mode, fixed_hour, holdout, exploration, horizon)
