"""Prompt templates: every one renders strictly, and the knowledge notes cover the design principles."""

import re

import pytest

from agents.llm.templates import TemplateError, knowledge, placeholders, render, render_text, template_names

ROLE_TEMPLATES = ("researcher", "coder", "coder_fix", "analyst", "judge")


@pytest.mark.parametrize("name", [n for n in template_names() if not n.startswith("knowledge-")])
def test_every_template_renders_with_exactly_its_placeholders(name):
    values = {key: f"<{key}>" for key in placeholders(name)}
    messages = render(name, **values)
    text = "\n".join(m["content"] for m in messages)
    assert all(f"<{key}>" in text for key in values)
    assert "{{" not in text, "no placeholder is left unfilled"


@pytest.mark.parametrize("name", ROLE_TEMPLATES)
def test_role_templates_have_a_system_message_naming_the_role(name):
    messages = render(name, **{key: "x" for key in placeholders(name)})
    assert [m["role"] for m in messages] == ["system", "user"]
    role = "coder" if name == "coder_fix" else name
    assert re.match(rf"Role: {role}\.", messages[0]["content"])


def test_a_missing_or_unused_value_is_an_error():
    values = {key: "x" for key in placeholders("judge")}
    with pytest.raises(TemplateError, match="missing value\\(s\\) code"):
        render("judge", **{k: v for k, v in values.items() if k != "code"})
    with pytest.raises(TemplateError, match="unused value\\(s\\) extra"):
        render("judge", **values, extra="y")
    with pytest.raises(TemplateError, match="must be text or a number"):
        render("judge", **{**values, "code": None})
    with pytest.raises(TemplateError, match="no prompt template 'nope'"):
        render("nope")


def test_inserted_values_are_not_scanned_for_placeholders():
    text = render_text("design_brief", id=1, name="{{metrics}}", origin="llm", outcome="ok", metrics="m",
                       analysis="{{ id }}")
    assert "{{metrics}}" in text and "{{ id }}" in text


def test_the_knowledge_notes_cover_the_principles_of_linear_attention_design():
    notes = knowledge().lower()
    for topic in ("gating and forgetting", "the delta rule", "negative eigenvalues", "feature maps",
                  "short convolutions", "normalization", "hybrid", "chunked parallel forms", "recall versus state"):
        assert topic in notes
    researcher = render("researcher", **{key: "x" for key in placeholders("researcher")} | {"knowledge": notes})
    assert "the delta rule" in researcher[0]["content"]
