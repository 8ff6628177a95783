"""The JSON schemas of the replies that must be JSON, as the providers' structured-output format.

Sent as ``response_format`` (``{"type": "json_schema", ...}``, which OpenAI, vLLM, llama.cpp and
Ollama servers accept through litellm), a schema constrains a model's decoding to the object its
parser reads, so a small local model cannot echo the template or answer in prose. The schemas
name the keys and types the parsers in ``parsing`` read, and only those: length and range limits
are not in every provider's schema dialect (OpenAI's strict mode refuses some), so the parsers keep
checking every reply, which also covers a provider that ignores the format.
"""

from __future__ import annotations

PROPOSAL = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "motivation": {"type": "string"},
        "plan": {"type": "string"},
        "parents": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["name", "motivation", "plan", "parents"],
    "additionalProperties": False,
}

JUDGEMENT = {
    "type": "object",
    "properties": {"score": {"type": "number"}, "rationale": {"type": "string"}},
    "required": ["score", "rationale"],
    "additionalProperties": False,
}


def response_format(name: str, schema: dict) -> dict:
    """The chat-completions ``response_format`` asking for JSON that matches ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
