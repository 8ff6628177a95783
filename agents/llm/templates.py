"""Strict rendering of the prompt templates in ``prompts/``.

A template is a Markdown file with ``{{name}}`` placeholders. Rendering is strict in both
directions: a placeholder without a value and a value without a placeholder are errors, so a
template and the code that fills it cannot drift apart silently. Values are inserted once and never
scanned again, so braces inside inserted code are safe. A file split by ``--- system ---`` and
``--- user ---`` lines renders to chat messages; a file without such lines is one user message.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SECTION = re.compile(r"^--- (system|user|assistant) ---[ \t]*$", re.MULTILINE)
KNOWLEDGE_PREFIX = "knowledge-"


class TemplateError(ValueError):
    """A template is missing, or its placeholders and the given values do not match."""


def template_names() -> list[str]:
    """Every template in ``prompts/`` (file names without ``.md``), sorted."""
    return sorted(p.name[:-3] for p in files("prompts").iterdir() if p.name.endswith(".md"))


@cache
def source(name: str) -> str:
    path = files("prompts").joinpath(f"{name}.md")
    if not path.is_file():
        raise TemplateError(f"no prompt template {name!r}; known: {', '.join(template_names())}")
    return path.read_text(encoding="utf-8")


def placeholders(name: str) -> set[str]:
    return set(PLACEHOLDER.findall(source(name)))


def fill(text: str, values: dict[str, object], where: str) -> str:
    """``text`` with every placeholder replaced; raises TemplateError on a missing or unused value."""
    wanted = set(PLACEHOLDER.findall(text))
    missing, unused = sorted(wanted - set(values)), sorted(set(values) - wanted)
    if missing or unused:
        problems = ([f"missing value(s) {', '.join(missing)}"] if missing else []) + (
            [f"unused value(s) {', '.join(unused)}"] if unused else [])
        raise TemplateError(f"template {where!r}: {'; '.join(problems)}")
    for key, value in values.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise TemplateError(f"template {where!r}: value {key!r} must be text or a number, "
                                f"got {type(value).__name__}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def render_text(template: str, /, **values: object) -> str:
    """The template filled in, as one text (for templates without sections)."""
    return fill(source(template), values, template).strip()


def render(template: str, /, **values: object) -> list[dict[str, str]]:
    """The template filled in, as chat messages ``[{"role": ..., "content": ...}, ...]``."""
    text = fill(source(template), values, template)
    parts = SECTION.split(text)
    if len(parts) == 1:
        return [{"role": "user", "content": text.strip()}]
    if parts[0].strip():
        raise TemplateError(f"template {template!r}: text before the first '--- role ---' line")
    return [{"role": role, "content": content.strip()} for role, content in zip(parts[1::2], parts[2::2])]


@cache
def knowledge() -> str:
    """The knowledge notes (``prompts/knowledge-*.md``) in file order, as one text."""
    names = [n for n in template_names() if n.startswith(KNOWLEDGE_PREFIX)]
    return "\n\n".join(render_text(n) for n in names)
