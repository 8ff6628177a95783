"""Reading model replies strictly: a proposal, a design file, an analysis, a judgement.

Each parser returns a clean value or raises ``ParseError`` with a named status, which becomes the
recorded status of the call: ``empty``, ``malformed`` (not the JSON object asked for), ``no-code``
(no Python code block), and for a design file the static pre-check's ``syntax``, ``unsafe`` and
``contract``. The pre-check runs the static check it is given (the evaluator's parse and safety
scan, which the loop passes in; Python's parser alone by default) and checks the contract's shape
on the syntax tree; no candidate code is executed here.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Protocol

from agents.llm.client import ParseError

PARSE_STATUSES = ("empty", "malformed", "no-code", "syntax", "unsafe", "contract")
MAX_REPLY_CHARS = 200_000  # longer replies are refused before any parsing
MAX_NAME_CHARS = 80
MAX_ANALYSIS_CHARS = 4000
MAX_PARENTS = 2

FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
PYTHON_TAGS = ("python", "py", "python3", "")
# The contract's constructor parameters, as the evaluator requires them when it loads a design.
REQUIRED_INIT_PARAMS = ("d_model", "n_heads", "layer_idx", "n_layers")


class StaticCheck(Protocol):
    """Checks a design file without running it (the evaluator's ``check_static``).

    Returns the file's syntax tree. A rejected file raises an exception whose ``status`` names the
    failure (``syntax`` or ``unsafe``) and whose ``reason`` says what and where.
    """

    def __call__(self, code: str) -> ast.Module: ...


def parse_syntax(code: str) -> ast.Module:
    """The static check when none is given: Python's parser alone, no safety scan."""
    try:
        return ast.parse(code, filename="design.py")
    except SyntaxError as exc:
        raise ParseError("syntax", f"line {exc.lineno}: {exc.msg}") from None


def _text(reply: str) -> str:
    if not isinstance(reply, str) or not reply.strip():
        raise ParseError("empty", "the reply is empty")
    if len(reply) > MAX_REPLY_CHARS:
        raise ParseError("malformed", f"the reply has {len(reply):,} characters; at most {MAX_REPLY_CHARS:,} are read")
    return reply.strip()


def json_object(reply: str) -> dict:
    """The JSON object in a reply: the whole reply, a ```json block, or the outermost {...} in the text."""
    text = _text(reply)
    blocks = [body for tag, body in FENCE.findall(text) if tag.lower() in ("json", "")]
    candidates = blocks + [text]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{"): text.rindex("}") + 1])
    error = "no JSON object found"
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError) as exc:  # ValueError covers JSONDecodeError and over-long integers
            error = f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:120]})"
            continue
        if isinstance(value, dict):
            return value
        error = f"expected a JSON object, got {type(value).__name__}"
    raise ParseError("malformed", error)


def _kind(value: object) -> str:
    """What a value is, in words for an error: "nothing", "an empty string", or its JSON type's Python name."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return "an empty string" if not value else "only whitespace"
    return type(value).__name__


def _string(data: dict, key: str, max_chars: int | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ParseError("malformed", f"'{key}' must be a non-empty string, got {_kind(value)}")
    value = " ".join(value.split())
    if max_chars is not None and len(value) > max_chars:
        raise ParseError("malformed", f"'{key}' has {len(value)} characters; at most {max_chars}")
    return value


def parse_proposal(reply: str, allowed_parents: set[int], default_parent: int) -> dict:
    """{"name", "motivation", "plan", "parents"} from the researcher's JSON; parents must be designs shown."""
    data = json_object(reply)
    name = _string(data, "name", MAX_NAME_CHARS)
    if not any(c.isalnum() for c in name):
        raise ParseError("malformed", f"'name' must contain a letter or digit, got {name!r}")
    proposal = {"name": name, "motivation": _string(data, "motivation"), "plan": _string(data, "plan")}
    parents = data.get("parents", [default_parent])
    if parents is None or parents == []:
        parents = [default_parent]
    if isinstance(parents, int) and not isinstance(parents, bool):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in parents):
        raise ParseError("malformed", f"'parents' must be a list of design ids, got {json.dumps(parents)[:80]}")
    parents = list(dict.fromkeys(parents))
    if len(parents) > MAX_PARENTS:
        raise ParseError("malformed", f"'parents' lists {len(parents)} designs; at most {MAX_PARENTS}")
    if unknown := [p for p in parents if p not in allowed_parents]:
        raise ParseError("malformed", f"'parents' names design(s) {unknown} that were not shown; "
                                      f"choose from {sorted(allowed_parents)}")
    return {**proposal, "parents": tuple(parents)}


def extract_code(reply: str) -> str:
    """The design file in a reply: the Python code block that defines Mixer (else the longest one)."""
    text = _text(reply)
    blocks = [body for tag, body in FENCE.findall(text) if tag.lower() in PYTHON_TAGS and body.strip()]
    if not blocks:
        raise ParseError("no-code", "the reply has no ```python code block with the design file")
    with_mixer = [b for b in blocks if re.search(r"^class\s+Mixer\b", b, re.MULTILINE)]
    return max(with_mixer or blocks, key=len).strip() + "\n"


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def check_contract(tree: ast.Module) -> None:
    """The contract's shape, statically: a Mixer class with the right __init__, forward, and a whole recurrent form."""
    mixer = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Mixer"), None)
    if mixer is None:
        raise ParseError("contract", "the file defines no top-level class Mixer")
    init = _method(mixer, "__init__")
    if init is None:
        raise ParseError("contract", f"Mixer defines no __init__({', '.join(REQUIRED_INIT_PARAMS)}, **kw)")
    names = {a.arg for a in init.args.posonlyargs + init.args.args + init.args.kwonlyargs}
    missing = [p for p in REQUIRED_INIT_PARAMS if p not in names]
    if missing and init.args.kwarg is None:
        raise ParseError("contract", f"Mixer.__init__ lacks parameter(s) {', '.join(missing)}")
    if _method(mixer, "forward") is None:
        raise ParseError("contract", "Mixer defines no forward(self, x)")
    if (_method(mixer, "step") is None) != (_method(mixer, "init_state") is None):
        raise ParseError("contract", "a recurrent form needs both init_state(batch) and step(x_t, state)")


def precheck(code: str, static_check: StaticCheck = parse_syntax) -> None:
    """What the sandbox would reject before running anything: what ``static_check`` rejects (with the
    evaluator's check: syntax and the safety scan), then the contract's shape."""
    try:
        tree = static_check(code)
    except (RecursionError, MemoryError, ValueError) as exc:  # e.g. absurd nesting or a NUL byte
        raise ParseError("syntax", f"the file cannot be parsed: {type(exc).__name__}: {str(exc)[:200]}") from None
    except Exception as failure:
        status = getattr(failure, "status", None)
        if status not in PARSE_STATUSES:  # not a rejection the check names: a fault in the check itself
            raise
        raise ParseError(status, failure.reason) from None
    check_contract(tree)


def parse_design(reply: str, static_check: StaticCheck = parse_syntax) -> str:
    """The design file in a coder reply, pre-checked with ``static_check``."""
    code = extract_code(reply)
    precheck(code, static_check)
    return code


def parse_analysis(reply: str) -> str:
    text = " ".join(_text(reply).split())
    return text if len(text) <= MAX_ANALYSIS_CHARS else text[: MAX_ANALYSIS_CHARS - 1] + "…"


def parse_judgement(reply: str) -> tuple[float, str]:
    """(score in [0, 10], rationale) from the judge's JSON."""
    data = json_object(reply)
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise ParseError("malformed", f"'score' must be a number from 0 to 10, got {json.dumps(score)[:40]}")
    if not 0 <= score <= 10:
        raise ParseError("malformed", f"'score' must be from 0 to 10, got {score}")
    return float(score), _string(data, "rationale", MAX_ANALYSIS_CHARS)
