"""Seeds a fresh licensd through its admin API (/licensd/v1) for the msgraph-sdk suite: the seed's
products from the bundled Microsoft catalog with the catalog's default rules, Exchange as a mailbox
plan (unique proxy addresses), Microsoft Teams unavailable in Cuba, and self-healing off so that
fixes take effect on reprocess, as in the seed's portal."""

import sys

from conftest import E1, E3, EMS, WORKPLACE_ANALYTICS, admin_ok

EXCHANGE_PLANS = ["9aaf7827-d63c-4b61-89c3-182f06f82e5c", "efb87545-963c-4e0d-99df-69c6916d9eb0"]
TEAMS = "57ff2da0-773e-42df-b2af-ffb7a2317929"


def change_rules(plan, change):
    rules = admin_ok("GET", f"/licensd/v1/servicePlans/{plan}")["rules"]
    change(rules)
    admin_ok("PUT", f"/licensd/v1/servicePlans/{plan}/rules", rules)


def main():
    admin_ok(
        "POST",
        "/licensd/v1/catalog/import",
        {
            "products": [
                {"skuId": E1, "prepaidUnits": 1000},
                {"skuId": E3, "prepaidUnits": 1000},
                {"skuId": EMS, "prepaidUnits": 1000},
                {"skuId": WORKPLACE_ANALYTICS, "prepaidUnits": 100},
            ]
        },
    )
    for plan in EXCHANGE_PLANS:
        change_rules(plan, lambda rules: rules.update(needsUniqueProxyAddress=True))
    change_rules(TEAMS, lambda rules: rules.update(unavailableIn=["CU"]))
    admin_ok("PATCH", "/licensd/v1/settings", {"selfHealing": False})
    print("seeded E1, E3, EMS E3 and Workplace Analytics", file=sys.stderr)


if __name__ == "__main__":
    main()
