"""Prompt templates: every one renders strictly, and the knowledge notes cover the design principles."""

import re

import pytest

from agents.llm.schemas import JUDGEMENT, PROPOSAL
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


JSON_OBJECT_LITERAL = re.compile(r'^\s*[{\[]|"[A-Za-z_][A-Za-z0-9_ ]*"\s*:|\{\s*"|\[\s*<', re.MULTILINE)


@pytest.mark.parametrize("name", ["researcher", "researcher_repair", "judge"])
def test_the_prompts_asking_for_json_describe_the_reply_in_prose_without_a_template_to_echo(name):
    values = {key: f"<{key}>" for key in placeholders(name)}
    if "knowledge" in values:
        values["knowledge"] = knowledge()  # the notes are sent as they are, so they are checked too
    text = "\n".join(m["content"] for m in render(name, **values))
    assert not JSON_OBJECT_LITERAL.search(text), JSON_OBJECT_LITERAL.search(text).group(0)
    assert "JSON object" in text  # the parser still reads one object, and the prompt says so
    schema = JUDGEMENT if name == "judge" else PROPOSAL
    for key in schema["required"]:  # every field the schema and the parser read is named
        assert re.search(rf"\b{key}\b", text), key
    assert JSON_OBJECT_LITERAL.search('Answer with:\n{"name": "<short name>", "parents": [<ids>]}')


def test_a_design_shows_its_mean_over_seeds_its_spread_and_a_pending_race():
    from agents.base import DesignSummary
    from agents.llm.views import outcome_text

    three = DesignSummary(1, "a", "llm", None, 0.5, {}, "ok", seed_scores=(0.4, 0.5, 0.6))
    assert outcome_text(three) == "ok, score 0.5 ± 0.1 (mean ± std over 3 seeds)"
    one = DesignSummary(2, "b", "llm", None, 0.9, {}, "ok", seed_scores=(0.9,), racing=True)
    assert outcome_text(one) == "ok, score 0.9 (one seed); more seeds are being run before it ranks"
