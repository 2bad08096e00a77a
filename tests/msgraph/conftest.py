"""Helpers of the msgraph-sdk compatibility suite: Microsoft's own Graph SDK, unmodified, pointed at
a running `licensd serve` (LICENSD_URL, started and seeded by run.sh) with its bootstrap bearer token (LICENSD_TOKEN),
plus a small client for licensd's admin API (/licensd/v1), which Graph has no equivalent for."""

import asyncio
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient

BASE_URL = os.environ.get("LICENSD_URL", "http://127.0.0.1:8080").rstrip("/")
# The Global Administrator token run.sh gave the server (LICENSD_BOOTSTRAP_TOKEN).
TOKEN = os.environ["LICENSD_TOKEN"]

# The seed's products: Office 365 E1, Office 365 E3, EMS E3 and Microsoft Workplace Analytics.
E1 = "18181a46-0d4e-45cd-891e-60aabd171b4e"
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
WORKPLACE_ANALYTICS = "3d957427-ecdc-4df2-aacd-01cc9d519da8"
EXCHANGE_PLAN_2 = "efb87545-963c-4e0d-99df-69c6916d9eb0"


class StaticTokens(AccessTokenProvider):
    """A bearer token provider whose allowed hosts are the licensd server's."""

    def __init__(self):
        host = urllib.parse.urlparse(BASE_URL).netloc
        self.validator = AllowedHostsValidator([host, host.split(":")[0]])

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return TOKEN

    def get_allowed_hosts_validator(self):
        return self.validator


def graph_client() -> GraphServiceClient:
    """A GraphServiceClient on licensd; create it inside the event loop that uses it."""
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticTokens()))
    adapter.base_url = f"{BASE_URL}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


def run(scenario):
    """Runs `async def scenario(client)` with a fresh client in its own event loop."""

    async def main():
        return await scenario(graph_client())

    return asyncio.run(main())


def admin(method, path, body=None):
    """Calls licensd's admin API; returns (status, parsed JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{BASE_URL}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, (json.loads(text) if text else None)


def admin_ok(method, path, body=None):
    status, answer = admin(method, path, body)
    assert 200 <= status < 300, f"{method} {path}: {status} {answer}"
    return answer


async def wait_until(condition, what, timeout=60.0):
    """Polls `async def condition()` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
