"""Generative models behind one small interface, for the API's answers (api/ask.py) and the suggest
stage's reminder titles: Gemini through the google-genai SDK, any OpenAI-compatible server (OpenAI,
Ollama, llama.cpp's server, vLLM) through the openai SDK. ASK_PROVIDER=extractive (the default) has no
provider here at all: `provider(cfg)` is None and nothing leaves the deployment.

What every call shares is here once: the SDK's client made on first use (never at import), transient
errors (429, 500, 502, 503, 504, timeouts, lost connections) retried with jittered backoff before the
first word only, `gemini_api_calls_total{provider,outcome}` and `ai_tokens_total{provider,kind}`, and
the provider's health for the jobs view. No tools are ever offered: a model can only write text."""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from shared.config import Settings
from shared.metrics import AI_CALLS, AI_QUOTA, AI_TOKENS

log = logging.getLogger("mindspace.ai")

DEFAULT_MODELS = {"gemini": "gemini-2.5-flash", "openai": "gpt-4o-mini"}
TRANSIENT = {429, 500, 502, 503, 504}


class ProviderError(Exception):
    """A provider failed for good (after retries, or mid-answer): its name, the HTTP status it gave
    (0: none came, a timeout or a lost connection), and whether it was the provider's quota."""

    def __init__(self, provider: str, status: int, message: str):
        self.provider, self.status = provider, status
        self.quota = status == 429
        super().__init__(f"{provider}: {message}")


@dataclass
class Usage:
    prompt: int = 0
    completion: int = 0

    def as_dict(self) -> dict:
        return {"prompt_tokens": self.prompt, "completion_tokens": self.completion,
                "total_tokens": self.prompt + self.completion}


@dataclass
class Health:
    """What the jobs view shows of a provider: this replica's last success and last failure."""
    calls: dict = field(default_factory=dict)
    last_ok_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


HEALTH: dict[str, Health] = {}


class Provider:
    name: str

    def __init__(self, cfg: Settings):
        self.model = cfg.ask_model or DEFAULT_MODELS[self.name]
        self.timeout, self.attempts = cfg.ask_timeout_seconds, cfg.ask_retries + 1
        self._client, self._lock = None, threading.Lock()
        # GEMINI_API_KEY and GEMINI_BASE_URL, OPENAI_API_KEY and OPENAI_BASE_URL: named after the provider.
        self.key, self.base_url = getattr(cfg, f"{self.name}_api_key"), getattr(cfg, f"{self.name}_base_url")
        self.health = HEALTH.setdefault(self.name, Health())
        AI_QUOTA.labels(self.name).set(cfg.ai_daily_quota_tokens)

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = self.connect()
            return self._client

    def stream(self, system: str, prompt: str, max_tokens: int, usage: Usage, whole: bool = False) -> Iterator[str]:
        """The answer's text as it is written (`whole`: in one piece, from the provider's non-streaming
        call); `usage` is filled in as the provider reports it. The call is made here, and its transient
        errors retried until the first piece arrives: a ProviderError before any text comes from this
        call itself; after that, one ends the returned iterator."""
        def started():
            it = self.pieces(system, prompt, max_tokens, usage, whole)
            return itertools.chain([first], it) if (first := next(it, None)) is not None else iter(())
        return self._counted(self.retrying(started), usage)

    def _counted(self, pieces: Iterator[str], usage: Usage) -> Iterator[str]:
        try:
            yield from pieces
        except Exception as e:
            raise self.failed(e) from e
        self.count("ok")
        self.health.last_ok_at = time.time()
        AI_TOKENS.labels(self.name, "prompt").inc(usage.prompt)
        AI_TOKENS.labels(self.name, "completion").inc(usage.completion)

    def complete(self, system: str, prompt: str, max_tokens: int) -> tuple[str, Usage]:
        usage = Usage()
        return "".join(self.stream(system, prompt, max_tokens, usage, whole=True)), usage

    def retrying(self, call):
        def transient(e: BaseException) -> bool:
            status = self.status(e)
            self.count(outcome(status))
            log.warning("%s answered %s: %s", self.name, status or "nothing", short(e))
            return status in TRANSIENT or status == 0
        try:
            for attempt in Retrying(stop=stop_after_attempt(self.attempts), reraise=False,
                                    wait=wait_exponential_jitter(initial=0.5, max=8),
                                    retry=retry_if_exception(transient)):
                with attempt:
                    return call()
        except RetryError as e:
            raise self.failed(e.last_attempt.exception(), counted=True) from e
        except Exception as e:
            raise self.failed(e, counted=True) from e

    def failed(self, e: BaseException, counted: bool = False) -> ProviderError:
        if isinstance(e, ProviderError):
            return e
        status = self.status(e)
        if not counted:
            self.count(outcome(status))
        self.health.last_error, self.health.last_error_at = f"{status or 'no answer'}: {short(e)}", time.time()
        return ProviderError(self.name, status, short(e))

    def count(self, result: str) -> None:
        AI_CALLS.labels(self.name, result).inc()
        self.health.calls[result] = self.health.calls.get(result, 0) + 1

    # What each SDK does differently:
    def connect(self):
        raise NotImplementedError

    def pieces(self, system: str, prompt: str, max_tokens: int, usage: Usage, whole: bool) -> Iterator[str]:
        raise NotImplementedError

    def status(self, e: BaseException) -> int:
        raise NotImplementedError


class Gemini(Provider):
    name = "gemini"

    def connect(self):
        from google import genai
        from google.genai import types
        # The SDK's own retries are off (HttpRetryOptions unset): ours count and log each try.
        return genai.Client(api_key=self.key, http_options=types.HttpOptions(
            base_url=self.base_url or None, timeout=int(self.timeout * 1000)))

    def pieces(self, system, prompt, max_tokens, usage, whole):
        from google.genai import types
        config = types.GenerateContentConfig(system_instruction=system, max_output_tokens=max_tokens,
                                             temperature=0.2)
        call = self.client.models.generate_content if whole else self.client.models.generate_content_stream
        chunks = call(model=self.model, contents=prompt, config=config)
        for chunk in [chunks] if whole else chunks:
            if meta := chunk.usage_metadata:
                usage.prompt = meta.prompt_token_count or usage.prompt
                usage.completion = meta.candidates_token_count or usage.completion
            if chunk.text:
                yield chunk.text

    def status(self, e):
        from google.genai import errors
        return int(e.code) if isinstance(e, errors.APIError) else 0 if _network(e) else -1


class OpenAICompatible(Provider):
    name = "openai"

    def connect(self):
        import openai
        # A local server (Ollama, llama.cpp) wants no key, but the SDK insists on one.
        return openai.OpenAI(api_key=self.key or "none", base_url=self.base_url or None, timeout=self.timeout,
                             max_retries=0)

    def pieces(self, system, prompt, max_tokens, usage, whole):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        if whole:
            reply = self.client.chat.completions.create(model=self.model, max_tokens=max_tokens, temperature=0.2,
                                                        messages=messages)
            if reply.usage:
                usage.prompt, usage.completion = reply.usage.prompt_tokens, reply.usage.completion_tokens
            yield reply.choices[0].message.content or ""
            return
        stream = self.client.chat.completions.create(
            model=self.model, max_tokens=max_tokens, temperature=0.2, stream=True,
            stream_options={"include_usage": True}, messages=messages)
        for chunk in stream:
            if chunk.usage:
                usage.prompt, usage.completion = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
            if chunk.choices and (text := chunk.choices[0].delta.content):
                yield text

    def status(self, e):
        import openai
        if isinstance(e, openai.APIStatusError):
            return e.status_code
        return 0 if isinstance(e, openai.APIConnectionError) or _network(e) else -1  # timeouts are connection errors


PROVIDERS = {"gemini": Gemini, "openai": OpenAICompatible}
_made: dict[tuple, Provider] = {}


def provider(cfg: Settings) -> Provider | None:
    """The configured generative provider, one per process and settings; None for `extractive`."""
    if cfg.ask_provider not in PROVIDERS:
        return None
    key = tuple(getattr(cfg, f) for f in ("ask_provider", "ask_model", "gemini_api_key", "gemini_base_url",
                                          "openai_api_key", "openai_base_url", "ask_timeout_seconds", "ask_retries"))
    if key not in _made:
        _made[key] = PROVIDERS[cfg.ask_provider](cfg)
    return _made[key]


def outcome(status: int) -> str:
    return {0: "timeout", 429: "quota"}.get(status, "error")


def short(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


def _network(e: BaseException) -> bool:
    """A timeout or a lost connection, whichever HTTP library the SDK raised it from."""
    names = {c.__name__ for c in type(e).__mro__}
    return bool(names & {"TimeoutException", "NetworkError", "TransportError", "ConnectError", "ReadTimeout",
                         "ConnectionError", "TimeoutError"})
