"""Reads licensd's /metrics with the Prometheus project's own parsers (prometheus_client): the
strict OpenMetrics parser for the exposition as served, and checks the figures a Prometheus
server would record after the requests run.sh made. Exits non-zero on any parse error or wrong
figure."""

import os
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def scrape(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        content_type = response.headers.get("Content-Type", "")
        return content_type, response.read().decode("utf-8")


def samples(text):
    families = {family.name: family for family in text_string_to_metric_families(text)}
    return families, [sample for family in families.values() for sample in family.samples]


def one(found, name, **labels):
    matching = [
        sample.value
        for sample in found
        if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())
    ]
    if len(matching) != 1:
        raise SystemExit(f"expected one sample {name} {labels}, found {matching}")
    return matching[0]


def main():
    metrics_url = os.environ["LICENSD_METRICS_URL"]
    api_url = os.environ["LICENSD_URL"]
    token = os.environ["LICENSD_TOKEN"]

    content_type, text = scrape(f"{metrics_url}/metrics")
    assert content_type.startswith("application/openmetrics-text"), content_type
    families, found = samples(text)
    print(f"metrics address: {len(families)} families, {len(found)} samples parsed")
    assert families["licensd_http_requests"].type == "counter"
    assert families["licensd_http_request_duration_seconds"].type == "histogram"
    assert families["licensd_http_request_duration_seconds"].unit == "seconds"
    assert one(found, "licensd_http_requests_total", method="GET", route="/v1.0/users/{id}", status="200") >= 1
    assert one(found, "licensd_seats_purchased", sku_part_number="ENTERPRISEPACK") == 2
    assert one(found, "licensd_seats_consumed", sku_part_number="ENTERPRISEPACK") == 2
    assert one(found, "licensd_users_waiting_for_seats", sku_part_number="ENTERPRISEPACK") == 1
    assert one(found, "licensd_license_errors", error="CountViolation") == 1
    assert one(found, "licensd_queued_users") == 0
    assert one(found, "licensd_evaluated_users_total") >= 3

    content_type, text = scrape(f"{api_url}/metrics", token)
    families, found = samples(text)
    print(f"API address (one tenant): {len(families)} families, {len(found)} samples parsed")
    assert not any(name.startswith("licensd_http") for name in families), "no instance figures per tenant"
    assert one(found, "licensd_users") == 3
    print("the exposition parses with prometheus_client's OpenMetrics parser and holds the expected figures")


if __name__ == "__main__":
    sys.exit(main())
