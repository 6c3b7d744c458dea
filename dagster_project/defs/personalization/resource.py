"""The personalization resource: brand, prompts, writer chain and renderer, built from
PersonalizationSettings. API keys and the unsubscribe signing key are read when used, so they never
sit in resource config (which the UI shows)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg

from dagster_project.personalization.chain import ContentChain, DailyBudget
from dagster_project.personalization.guardrails import Brand, load_brand
from dagster_project.personalization.llm_writer import LlmEndpoint
from dagster_project.personalization.pii import PiiDetector
from dagster_project.personalization.prompts import load_prompt_pair
from dagster_project.personalization.render import MessageRenderer
from dagster_project.settings import LlmTarget, PersonalizationSettings, llm_api_key, unsubscribe_secret
from dagster_project.warehouse import Warehouse


class LlmEndpointConfig(dg.Config):
    name: str
    base_url: str | None = None
    model: str
    input_usd_per_million: float
    output_usd_per_million: float
    timeout_seconds: float = 20.0


class PersonalizationResource(dg.ConfigurableResource):
    content_dir: str
    data_dir: str
    endpoints: list[LlmEndpointConfig] = []  # empty: the rule-based writer writes everything
    daily_budget_usd: float = 1.0
    unsubscribe_url: str
    sender_domain: str
    phone_region: str = "US"

    @classmethod
    def from_settings(cls, settings: PersonalizationSettings, data_dir: Path, phone_region: str):
        targets: list[LlmTarget] = [t for t in (settings.primary, settings.secondary) if t]
        return cls(
            content_dir=str(settings.content_dir),
            data_dir=str(data_dir),
            endpoints=[LlmEndpointConfig(**t.__dict__) for t in targets],
            daily_budget_usd=settings.daily_budget_usd,
            unsubscribe_url=settings.unsubscribe_url,
            sender_domain=settings.sender_domain,
            phone_region=phone_region,
        )

    def brand(self) -> Brand:
        return load_brand(Path(self.content_dir) / "brand.yml")

    def prompts(self):
        return load_prompt_pair(Path(self.content_dir) / "prompts")

    def llm_endpoints(self) -> list[LlmEndpoint]:
        return [
            LlmEndpoint(name=e.name, base_url=e.base_url, api_key=llm_api_key(e.name), model=e.model,
                        input_usd_per_million=e.input_usd_per_million,
                        output_usd_per_million=e.output_usd_per_million, timeout_seconds=e.timeout_seconds)
            for e in self.endpoints
        ]

    def cache_identity(self) -> tuple[str, str | None]:
        """(prompt version, primary model): what, beside the segment facts, keys the content cache."""
        return self.prompts()[0].version, (self.endpoints[0].model if self.endpoints else None)

    def chain(self, warehouse: Warehouse, now: datetime) -> ContentChain:
        with warehouse.connect() as conn:
            names = [row[0] for row in conn.fetchall(
                "select first_name from marts.dim_customers where first_name is not null "
                "union select last_name from marts.dim_customers where last_name is not null"
            )]
            spent = conn.scalar(
                "select coalesce(sum(cost_usd), 0) from ops.llm_calls where called_at >= ?",
                [now.replace(hour=0, minute=0, second=0, microsecond=0)],
            ) if conn.table_exists("ops", "llm_calls") else 0
        return ContentChain(
            endpoints=self.llm_endpoints(),
            brand=self.brand(),
            pii=PiiDetector(names, phone_region=self.phone_region),
            budget=DailyBudget(limit_usd=self.daily_budget_usd, spent_usd=float(spent or 0)),
            prompts=self.prompts(),
        )

    def renderer(self) -> MessageRenderer:
        brand = self.brand()
        return MessageRenderer(
            templates_dir=Path(self.content_dir) / "templates",
            postal_address=brand.postal_address,
            company_name=brand.company_name,
            unsubscribe_base_url=self.unsubscribe_url,
            secret=unsubscribe_secret(Path(self.data_dir)),
            sender_domain=self.sender_domain,
            site_url=brand.site_url or None,
        )
