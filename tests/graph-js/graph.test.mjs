// Microsoft's JavaScript Graph client (unmodified) against `licensd serve` over TLS, started by
// run.sh with a self-signed certificate trusted through NODE_EXTRA_CA_CERTS: the PageIterator
// follows @odata.nextLink (absolute https links on HTTP/1.1), JSON batching with
// BatchRequestContent / BatchResponseContent, and a delta round to its deltaLink.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BatchRequestContent,
  BatchResponseContent,
  Client,
  PageIterator,
} from "@microsoft/microsoft-graph-client";

const base = process.env.LICENSD_URL; // https://localhost:PORT
const token = process.env.LICENSD_TOKEN;
const host = new URL(base).host;

const client = Client.init({
  authProvider: (done) => done(null, token),
  baseUrl: `${base}/`,
  defaultVersion: "v1.0",
  // The token is sent only to these hosts (Graph's own by default).
  customHosts: new Set([host, new URL(base).hostname]),
});

const E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900";
const suffix = Math.random().toString(16).slice(2, 10);

async function createUser(name) {
  return client.api("/users").post({
    displayName: name,
    userPrincipalName: `${name}@contoso.com`,
    mailNickname: name,
    accountEnabled: true,
    usageLocation: "US",
    passwordProfile: { password: "not stored" },
  });
}

test("the PageIterator reads every user through https next links", async () => {
  const created = [];
  for (let index = 0; index < 7; index += 1) {
    created.push((await createUser(`page${suffix}${index}`)).id);
  }
  const first = await client.api("/users").top(2).select("id,displayName").get();
  assert.ok(first["@odata.nextLink"].startsWith(`${base}/v1.0/users?`), first["@odata.nextLink"]);
  assert.ok(first["@odata.context"].startsWith("https://"), first["@odata.context"]);
  const seen = [];
  const iterator = new PageIterator(client, first, (user) => {
    seen.push(user.id);
    return true;
  });
  await iterator.iterate();
  for (const id of created) {
    assert.ok(seen.includes(id), `the iterator saw ${id}`);
  }
  assert.equal(new Set(seen).size, seen.length, "no user twice");
});

test("a $batch with BatchRequestContent answers each request", async () => {
  const userPrincipalName = `batch${suffix}@contoso.com`;
  const content = new BatchRequestContent([
    { id: "skus", request: new Request(`${base}/v1.0/subscribedSkus`, { method: "GET" }) },
    {
      id: "create",
      // The SDK accepts parallel or serial batches: each request depends on the previous one.
      dependsOn: ["skus"],
      request: new Request(`${base}/v1.0/users`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          displayName: "Batched",
          userPrincipalName,
          mailNickname: `batch${suffix}`,
          accountEnabled: true,
        }),
      }),
    },
    {
      id: "count",
      request: new Request(`${base}/v1.0/users/$count`, {
        method: "GET",
        headers: { ConsistencyLevel: "eventual" },
      }),
      dependsOn: ["create"],
    },
  ]);
  const body = await content.getContent();
  const answer = await client.api("/$batch").post(body);
  const responses = new BatchResponseContent(answer);
  const skus = responses.getResponseById("skus");
  assert.equal(skus.status, 200);
  const skuList = await skus.json();
  assert.ok(skuList.value.some((sku) => sku.skuId === E3), JSON.stringify(skuList));
  const created = responses.getResponseById("create");
  assert.equal(created.status, 201);
  const user = await created.json();
  assert.equal(user.userPrincipalName, userPrincipalName);
  assert.ok(created.headers.get("Location").startsWith(`${base}/v1.0/users/`));
  const count = responses.getResponseById("count");
  assert.equal(count.status, 200);
  assert.ok(Number(await count.text()) >= 1);
  // The user exists as if created alone.
  const read = await client.api(`/users/${user.id}`).get();
  assert.equal(read.displayName, "Batched");
});

test("a delta round ends with a deltaLink that later lists only changes", async () => {
  let page = await client
    .api("/users/delta")
    .header("Prefer", "odata.maxpagesize=3")
    .select("id,assignedLicenses")
    .get();
  let pages = 1;
  while (page["@odata.nextLink"]) {
    assert.ok(page["@odata.nextLink"].startsWith("https://"), page["@odata.nextLink"]);
    page = await client.api(page["@odata.nextLink"]).header("Prefer", "odata.maxpagesize=3").get();
    pages += 1;
  }
  assert.ok(pages > 1, "several pages");
  const deltaLink = page["@odata.deltaLink"];
  assert.ok(deltaLink.startsWith(`${base}/v1.0/users/delta?`), deltaLink);
  const changed = await createUser(`delta${suffix}`);
  const changes = await client.api(deltaLink).get();
  assert.deepEqual(
    changes.value.map((user) => user.id),
    [changed.id],
  );
});
