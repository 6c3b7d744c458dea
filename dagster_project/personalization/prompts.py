"""Versioned prompt files: content/prompts/<name>_<version>.md, one "# system" and one "# user" section.

A prompt's version is part of the content cache key and of every ops.llm_calls row, so changing the
words means a new file (v2), never an edit in place. Text before "# system" is a note for people and
is never sent. Placeholders are `{fact_name}`; anything else in braces (JSON examples) is left alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SECTION = re.compile(r"^#\s*(system|user)\s*$", re.IGNORECASE | re.MULTILINE)
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class PromptError(ValueError):
    """A prompt file is missing or malformed, or a placeholder has no fact; says which and the fix."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str  # "content_unit@v1", "content_unit@v1_retry"
    system: str
    user_template: str

    def render(self, facts: dict) -> tuple[str, str]:
        """(system, user) with every `{fact}` replaced; lists become a readable quoted list."""
        return self._fill(self.system, facts), self._fill(self.user_template, facts)

    def _fill(self, template: str, facts: dict) -> str:
        # One pass with a plain lookup: a value containing braces is never substituted again, and
        # nothing like str.format's attribute access ("{brief.__class__}") is possible.
        missing = sorted({key for key in PLACEHOLDER.findall(template) if key not in facts})
        if missing:
            raise PromptError(
                f"prompt {self.version} uses {', '.join('{' + m + '}' for m in missing)} but the facts have "
                f"no such key (known: {', '.join(sorted(facts))}); fix the placeholder in the prompt file"
            )
        return PLACEHOLDER.sub(lambda match: readable(facts[match.group(1)]), template)


def readable(value) -> str:
    if value is None or value == [] or value == ():
        return "(none)"
    if isinstance(value, (list, tuple)):
        # Quoted so items containing commas ("outdoor, camping & hiking") stay one item.
        return ", ".join(json.dumps(str(item), ensure_ascii=False) for item in value)
    return str(value)


def load_prompt(directory: Path, name: str, version: str = "v1") -> Prompt:
    path = Path(directory) / f"{name}_{version}.md"
    if not path.is_file():
        available = sorted(p.stem.removeprefix(f"{name}_") for p in Path(directory).glob(f"{name}_*.md"))
        raise PromptError(
            f"prompt file {path} not found; create it with a '# system' and a '# user' section"
            + (f", or use one of the versions in {directory}: {', '.join(available)}" if available else "")
        )
    text = path.read_text(encoding="utf-8")
    headings = [match.group(1).lower() for match in SECTION.finditer(text)]
    if sorted(headings) != ["system", "user"]:
        raise PromptError(
            f"prompt file {path} has sections {headings or 'none'}; it needs exactly one line '# system' "
            "followed by the system message and one line '# user' followed by the user message template"
        )
    parts = SECTION.split(text)  # [note, heading, body, heading, body]
    sections = {parts[i].lower(): parts[i + 1].strip() for i in (1, 3)}
    empty = [heading for heading, body in sections.items() if not body]
    if empty:
        raise PromptError(f"prompt file {path}: the '# {empty[0]}' section is empty; write its message under it")
    return Prompt(name=name, version=f"{name}@{version}", system=sections["system"], user_template=sections["user"])


def load_prompt_pair(directory: Path, name: str = "content_unit", version: str = "v1") -> tuple[Prompt, Prompt]:
    """(first attempt, regeneration prompt) — the second from f"{name}_{version}_retry.md"."""
    return load_prompt(directory, name, version), load_prompt(directory, name, f"{version}_retry")
