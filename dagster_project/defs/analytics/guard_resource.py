"""The deliverability guards' thresholds (settings.GuardSettings) as a resource, so the UI shows what
the checks judge against and the check bodies never read the environment."""

import dagster as dg

from dagster_project.settings import GuardSettings


class GuardResource(dg.ConfigurableResource):
    hard_bounce_rate: list[float] = list(GuardSettings.hard_bounce_rate)  # [warn, error], hard bounces per send
    spam_rate: list[float] = list(GuardSettings.spam_rate)  # [warn, error], complaints per delivery
    unsubscribe_spike: list[float] = list(GuardSettings.unsubscribe_spike)  # [warn, error], x the expected
    min_sends: int = GuardSettings.min_sends

    @classmethod
    def from_settings(cls, settings: GuardSettings) -> "GuardResource":
        return cls(hard_bounce_rate=list(settings.hard_bounce_rate), spam_rate=list(settings.spam_rate),
                   unsubscribe_spike=list(settings.unsubscribe_spike), min_sends=settings.min_sends)

    @property
    def settings(self) -> GuardSettings:
        return GuardSettings(hard_bounce_rate=_pair(self.hard_bounce_rate), spam_rate=_pair(self.spam_rate),
                             unsubscribe_spike=_pair(self.unsubscribe_spike), min_sends=self.min_sends)


def _pair(values: list[float]) -> tuple[float, float]:
    warn, error = values
    return float(warn), float(error)
