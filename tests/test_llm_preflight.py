"""The LLM preflight: a configuration that cannot work fails before anything runs, with one line
naming the cause and the fix; a local OpenAI-compatible server works with no key set."""

import socket

import pytest

from agents.llm import ClientSettings, InMemoryJournal, LLMClient, LLMConfigError, check_llm
from discover.config import ConfigError, RunConfig
from discover.config import check_llm as check_config
from tests.llm_server import LLMServer, Reply, Script

MESSAGES = [{"role": "system", "content": "Role: researcher."}, {"role": "user", "content": "propose"}]


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_API_BASE"):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_line_error(models, api_base=None) -> str:
    with pytest.raises(LLMConfigError) as error:
        check_llm(models, api_base, timeout_s=2.0)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("model, variable", [("openai/gpt-4o-mini", "OPENAI_API_KEY"),
                                             ("anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY")])
def test_a_hosted_model_without_its_key_names_the_variable_to_set(model, variable):
    message = one_line_error([model])
    assert f"needs {variable}" in message and f"export {variable}=" in message


def test_a_key_in_the_environment_passes_without_any_request(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    check_llm(["openai/gpt-4o-mini"])


def test_a_model_without_a_known_provider_is_named():
    assert "names no provider litellm knows" in one_line_error(["gpt4-by-someone/x"])


def test_an_api_base_that_does_not_answer_is_named_with_the_fix():
    url = f"http://127.0.0.1:{free_port()}/v1"
    message = one_line_error(["openai/test-model"], url)
    assert message.startswith(f"no LLM server answers at {url}") and "--api-base" in message


def test_a_model_the_server_does_not_serve_is_named_with_what_it_serves():
    with LLMServer(models=("qwen2.5-coder-1.5b",)) as server:
        message = one_line_error(["openai/test-model"], server.url)
    assert "does not serve model 'test-model'" in message and "use --model openai/qwen2.5-coder-1.5b" in message


def test_a_local_server_needs_no_key_for_the_check_or_the_calls():
    with LLMServer(Script().push("researcher", Reply("fine"))) as server:
        check_llm(["openai/test-model"], server.url)
        client = LLMClient(ClientSettings(api_base=server.url, timeout_s=5.0, retries=0), InMemoryJournal())
        assert client.complete("researcher", "openai/test-model", MESSAGES, lambda reply: reply).text == "fine"


def test_the_run_configuration_is_checked_for_every_role_and_raises_a_config_error(monkeypatch):
    with LLMServer() as server:
        check_config(RunConfig(model="openai/test-model", api_base=server.url))
        with pytest.raises(ConfigError, match="does not serve model 'other'"):
            check_config(RunConfig(model="openai/test-model", coder_model="openai/other", api_base=server.url))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with pytest.raises(ConfigError, match="needs ANTHROPIC_API_KEY"):
        check_config(RunConfig(model="openai/gpt-4o-mini", judge_model="anthropic/claude-sonnet-4-5"))
    with pytest.raises(ConfigError, match="no LLM server answers"):
        check_config(RunConfig(model="openai/test-model", api_base=f"http://127.0.0.1:{free_port()}/v1"))


def test_nothing_is_checked_offline_or_in_replay():
    check_config(RunConfig())
    check_config(RunConfig(model="openai/gpt-4o-mini", llm_cache="replay"))
