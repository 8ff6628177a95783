"""Configuration of the LLM backend: keys, per-role models, caps, the cache, and loud errors."""

import pytest

from agents.llm import CACHE_MODES, REPLY_TOKENS, LLMSettings
from discover.config import LLM_CACHE_MODES, ConfigError, RunConfig, llm_settings, load


def test_a_toml_file_sets_per_role_models_and_flags_override_it(tmp_path):
    path = tmp_path / "discover.toml"
    path.write_text('model = "openai/gpt-4o-mini"\ncoder_model = "anthropic/claude-sonnet-4-5"\n'
                    'max_cost = 2\nfewshot = 5\napi_base = "http://127.0.0.1:8000/v1"\n')
    config = load(path, max_tokens=50_000, fewshot=None)
    assert config.backend == "llm" and config.max_cost == 2.0 and isinstance(config.max_cost, float)
    settings = llm_settings(config)
    assert isinstance(settings, LLMSettings)
    assert settings.model_for("researcher") == "openai/gpt-4o-mini"
    assert settings.model_for("coder") == "anthropic/claude-sonnet-4-5"
    assert settings.fewshot == 5 and settings.judge_model == ""
    assert settings.client.api_base == "http://127.0.0.1:8000/v1" and settings.client.max_tokens == 50_000


def test_the_offline_backend_stays_the_default():
    config = RunConfig()
    assert config.model == "offline" and config.backend == "offline" and config.fewshot == 3
    assert config.max_cost == 0.0 and config.max_tokens == 0 and config.llm_cache == "record"


@pytest.mark.parametrize("overrides, message", [
    ({"coder_model": "openai/x"}, "coder_model need\\(s\\) the LLM backend"),
    ({"model": "openai/x", "llm_cache": "sometimes"}, "llm_cache must be one of"),
    ({"model": "openai/x", "max_cost": -1.0}, "max_cost must be >= 0"),
    ({"model": "openai/x", "fewshot": -1}, "fewshot must be >= 0"),
    ({"model": "openai/x", "llm_timeout_s": 0.0}, "llm_timeout_s must be > 0"),
    ({"model": "openai/x", "max_tokens": "lots"}, "max_tokens must be int, got str"),
    ({"model": ""}, "model must be 'offline' or a litellm model string"),
    ({"model": "openai/x", "llm_cache_from": "x.db"}, "llm_cache_from is read only when llm_cache = 'replay'"),
    ({"model": "openai/x", "llm_cache": "replay", "llm_cache_from": "/nonexistent/experience.db"},
     "no experience database at"),
])
def test_bad_llm_settings_fail_loudly(overrides, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**overrides)


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match="unknown configuration key\\(s\\): max_dollars"):
        load(None, max_dollars=3)


def test_the_cache_modes_agree():
    assert LLM_CACHE_MODES == CACHE_MODES


def test_reply_caps_per_role_come_from_the_configuration_with_the_backends_defaults(tmp_path):
    assert llm_settings(RunConfig(model="openai/x")).reply_tokens == REPLY_TOKENS
    path = tmp_path / "discover.toml"
    path.write_text('model = "openai/x"\ncoder_reply_tokens = 8000\nanalyst_reply_tokens = 0\n')
    settings = llm_settings(load(path))
    assert settings.reply_tokens_for("coder") == 8000 and settings.reply_tokens_for("analyst") == 0
    with pytest.raises(ConfigError, match="judge_reply_tokens must be >= 0"):
        RunConfig(model="openai/x", judge_reply_tokens=-1)
