"""Run by run.sh after it restarted the server on the same database: the deltaLink saved by
test_sync.py before the restart still works and returns the license change made just before."""

import json
import os
import urllib.parse

import pytest

from conftest import BASE_URL, E3, run

STATE_FILE = os.environ.get("LICENSD_RESTART_STATE")

pytestmark = pytest.mark.skipif(
    os.environ.get("LICENSD_AFTER_RESTART") != "1", reason="run by run.sh after restarting the server"
)


def test_the_delta_link_survives_a_restart():
    with open(STATE_FILE, encoding="utf-8") as state:
        saved = json.load(state)
    # The restarted server listens on another port: same link, new address.
    link = urllib.parse.urlparse(saved["link"])
    moved = BASE_URL + link.path + "?" + link.query

    async def scenario(client):
        page = await client.users.delta.with_url(moved).get()
        changed = {user.id: user for user in page.value}
        assert saved["licensed"] in changed, page.value
        licenses = changed[saved["licensed"]].assigned_licenses
        assert [str(license.sku_id) for license in licenses] == [E3]

    run(scenario)
