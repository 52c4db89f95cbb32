"""The gateway's HTTP layer under the openai SDK: connection pools sized for hundreds of concurrent calls,
and a lean reader of chat-completion bodies (measured in bench/teacher_throughput.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.request import getproxies

import httpx2
import openai

# httpcore's connection pool scans all its connections, probing each idle one's socket, twice per request: with
# one pool of 256 connections that scan was half the gateway's CPU at 256 concurrent calls. Above this many
# concurrency slots, requests are spread over several pools of at most this many connections.
POOL_CONNECTIONS = 32


def pooled_http_client(max_concurrency: int, timeout_s: float) -> httpx2.AsyncClient | None:
    """Up to ``POOL_CONNECTIONS`` slots, the SDK's own HTTP client (None); above, the SDK's default client (its
    timeout and redirect defaults) over sharded pools, each keeping alive a connection per slot it serves.

    (The SDK's single pool also keeps only 100 idle connections: above 100 concurrent calls most calls
    closed and reopened one.) With a proxy configured in the environment, the SDK's client as it is: httpx
    applies environment proxies only to its own transport.
    """
    slots = max_concurrency
    if slots <= POOL_CONNECTIONS or any(scheme in ("http", "https", "all") for scheme in getproxies()):
        return None
    return openai.DefaultAsyncHttpxClient(timeout=timeout_s, transport=_PoolShards(-(-slots // POOL_CONNECTIONS)))


class _PoolShards(httpx2.AsyncBaseTransport):
    """Several connection pools behind one transport; each request goes to the pool with the fewest in flight."""

    def __init__(self, count: int) -> None:
        ssl_context = httpx2.create_ssl_context()  # one for all pools: loading the CA bundle is slow
        limits = httpx2.Limits(
            max_connections=max(POOL_CONNECTIONS, 1000 // count), max_keepalive_connections=POOL_CONNECTIONS
        )
        self._pools = [httpx2.AsyncHTTPTransport(verify=ssl_context, limits=limits) for _ in range(count)]
        self._in_flight = [0] * count

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        index = min(range(len(self._pools)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._in_flight[index] -= 1
            raise
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _Released(response.stream, self._in_flight, index)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Released(httpx2.AsyncByteStream):
    """A response body that gives its pool's in-flight count back once, when it is closed."""

    def __init__(self, stream: httpx2.AsyncByteStream, in_flight: list[int], index: int) -> None:
        self._stream, self._in_flight, self._index = stream, in_flight, index

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._index >= 0:
                self._in_flight[self._index] -= 1
                self._index = -1


def read_completion(response: httpx2.Response) -> tuple[str, str, tuple[int, int] | None]:
    """(content, finish_reason, (prompt, completion tokens) or None) of a chat completion's JSON body."""
    try:
        data = json.loads(response.content)
        choice = data["choices"][0]
        content = (choice.get("message") or {}).get("content") or ""
        finish_reason = str(choice.get("finish_reason") or "")
        usage = data.get("usage")
        tokens = (int(usage["prompt_tokens"]), int(usage["completion_tokens"])) if usage else None
        if not isinstance(content, str):
            raise TypeError("message.content is not a string")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise openai.APIResponseValidationError(
            response=response, body=response.text, message=f"not a chat completion: {exc!r}"
        ) from None
    return content, finish_reason, tokens
