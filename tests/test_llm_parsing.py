"""Strict parsing of replies: proposals, design files with the static pre-check, analyses, judgements."""

import json
from pathlib import Path

import pytest

from agents.llm import ParseError
from agents.llm.parsing import (
    REQUIRED_INIT_PARAMS,
    extract_code,
    parse_analysis,
    parse_design,
    parse_judgement,
    parse_proposal,
)
from evaluator.design import REQUIRED_INIT_PARAMS as EVALUATOR_INIT_PARAMS
from evaluator.design import check_static
from evaluator.status import EvalFailure
from tests.llm_server import code_reply, proposal_reply

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()


def status_of(fn, *args) -> str:
    with pytest.raises(ParseError) as error:
        fn(*args)
    return error.value.status


def test_a_proposal_in_a_fenced_block_or_bare_json_parses_and_defaults_its_parent():
    parsed = parse_proposal(proposal_reply("Gated  linear\nattention"), {3, 4}, 3)
    assert parsed["name"] == "Gated linear attention" and parsed["parents"] == (3,)
    bare = '{"name": "x1", "motivation": "m", "plan": "p", "parents": [4, 3, 4]}'
    assert parse_proposal(bare, {3, 4}, 3)["parents"] == (4, 3)


@pytest.mark.parametrize("reply", [
    "", "   ", "I think we should add a gate.", "[1, 2]", '{"name": "x"', '{"name": 5, "motivation": "m", "plan": "p"}',
    '{"name": "x", "motivation": "m"}', '{"name": "' + "n" * 200 + '", "motivation": "m", "plan": "p"}',
    '{"name": "x", "motivation": "m", "plan": "p", "parents": [99]}',
    '{"name": "x", "motivation": "m", "plan": "p", "parents": [true]}',
    '{"name": "x", "motivation": "m", "plan": "p", "parents": [1, 2, 3]}',
    '{"name": "!!!", "motivation": "m", "plan": "p"}', '{"name": "x", "motivation": "m", "plan": "p", "parents": '
    + "1" * 5000 + "}", "[" * 100_000,
])
def test_unusable_proposals_are_named_failures(reply):
    assert status_of(parse_proposal, reply, {1, 2, 3}, 1) in ("empty", "malformed")


def test_the_code_block_defining_mixer_is_taken_from_a_chatty_reply():
    reply = "First a helper:\n```python\nx = 1\n```\nThen the file:\n" + code_reply(GOOD) + "\nDone."
    assert extract_code(reply) == GOOD.strip() + "\n"
    assert parse_design(reply, check_static).startswith('"""Tiny linear attention')


@pytest.mark.parametrize("reply, status", [
    ("Sorry, I cannot help with that.", "no-code"),
    ("```json\n{}\n```", "no-code"),
    (code_reply("class Mixer(:\n    pass"), "syntax"),
    (code_reply("import os\n" + GOOD), "unsafe"),
    (code_reply(GOOD.replace("import torch\n", "import torch\nimport subprocess\n")), "unsafe"),
    (code_reply(GOOD.replace("class Mixer", "class Mixture")), "contract"),
    (code_reply(GOOD.replace("layer_idx, n_layers, **kw", "layer_idx")), "contract"),
    (code_reply(GOOD.replace("def step(", "def stepper(")), "contract"),
    (code_reply(GOOD.replace("def forward(", "def fwd(")), "contract"),
    (code_reply("x = (" * 5000 + "1" + ")" * 5000 + "\nclass Mixer: pass"), "syntax"),
    (code_reply("a = 1\x00\nclass Mixer: pass"), "syntax"),
    ("```python\n" + GOOD[: GOOD.index("nn.Linear(") + 10], "syntax"),  # a reply cut off mid-file
])
def test_a_design_file_is_prechecked_without_running_it(reply, status):
    assert status_of(parse_design, reply, check_static) == status


def test_without_the_evaluators_check_only_syntax_and_the_contract_are_prechecked():
    assert parse_design(code_reply("import os\n" + GOOD)).startswith("import os")
    assert status_of(parse_design, code_reply("class Mixer(:\n    pass")) == "syntax"
    assert status_of(parse_design, code_reply(GOOD.replace("class Mixer", "class Mixture"))) == "contract"


def test_the_unsafe_feedback_is_the_evaluators_reason_word_for_word():
    reply = code_reply("import os\n" + GOOD)
    with pytest.raises(EvalFailure) as failure:
        check_static("import os\n" + GOOD)
    with pytest.raises(ParseError) as error:
        parse_design(reply, check_static)
    assert (error.value.status, error.value.reason) == (failure.value.status, failure.value.reason)


def test_the_contract_check_asks_for_the_constructor_the_evaluator_requires():
    assert REQUIRED_INIT_PARAMS == EVALUATOR_INIT_PARAMS


def test_analysis_and_judgement_replies():
    assert parse_analysis("  The gate  helped.\n\nMQAR rose. ") == "The gate helped. MQAR rose."
    assert len(parse_analysis("word " * 5000)) == 4000
    assert status_of(parse_analysis, " \n ") == "empty"
    assert parse_judgement('{"score": 7, "rationale": "sound idea"}') == (7.0, "sound idea")
    for bad in ('{"score": 11, "rationale": "r"}', '{"score": NaN, "rationale": "r"}', '{"score": "7"}',
                '{"score": true, "rationale": "r"}', '{"score": 5}', "seven"):
        assert status_of(parse_judgement, bad) == "malformed"


@pytest.mark.parametrize("value, got", [("", "an empty string"), ("   ", "only whitespace"), (None, "nothing"),
                                        (5, "int"), ([], "list")])
def test_a_field_that_is_not_a_non_empty_string_says_what_it_got(value, got):
    for key in ("name", "motivation", "plan"):
        data = {"name": "n", "motivation": "m", "plan": "p", key: value}
        with pytest.raises(ParseError) as error:
            parse_proposal(json.dumps(data), {1}, 1)
        assert error.value.reason == f"'{key}' must be a non-empty string, got {got}"
    with pytest.raises(ParseError, match=f"'rationale' must be a non-empty string, got {got}"):
        parse_judgement(json.dumps({"score": 5, "rationale": value}))
