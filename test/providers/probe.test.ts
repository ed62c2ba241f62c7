/**
 * The L4FAME reachability probe and the golden image's check, against servers
 * on loopback only: an unreachable repository fails before any build.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { probeUrl, releaseUrl } from "../../lib/host/probe";
import { imageKey, imageRecipe } from "../../lib/image";
import {
  GoldenImageBuild,
  type GoldenImageInputs,
  type GoldenImageOutputs,
} from "../../providers/goldenImage";
import { loadSerialized } from "../helpers/engine";
import { imageInputs } from "../helpers/fixtures";
import { scratchDir } from "../helpers/sandbox";

function listen(handler: http.RequestListener): Promise<{ server: http.Server; url: string }> {
  return new Promise((resolve) => {
    const server = http.createServer(handler);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${port}` });
    });
  });
}

describe("L4FAME probe and golden image check", function () {
  this.timeout(30_000);
  let repo: { server: http.Server; url: string };
  let proxy: { server: http.Server; url: string };
  const seen: string[] = [];

  before(async () => {
    repo = await listen((req, res) => {
      res.statusCode = req.url === "/Debian/dists/testing/Release" ? 200 : 404;
      res.end("Suite: testing\n");
    });
    // A forward proxy that only records the absolute URI it was asked for and answers itself.
    proxy = await listen((req, res) => {
      seen.push(req.url ?? "");
      res.statusCode = req.url?.endsWith("/dists/testing/Release") ? 200 : 502;
      res.end();
    });
  });
  after(() => {
    repo.server.close();
    proxy.server.close();
  });

  it("finds a repository's Release file, directly and through a proxy", async () => {
    assert.equal(
      releaseUrl(`${repo.url}/Debian/`, "testing"),
      `${repo.url}/Debian/dists/testing/Release`,
    );
    assert.deepEqual(await probeUrl(releaseUrl(`${repo.url}/Debian`, "testing"), ""), {
      ok: true,
      detail: "HTTP 200",
    });
    assert.deepEqual(await probeUrl(`${repo.url}/nope`, ""), { ok: false, detail: "HTTP 404" });
    const via = await probeUrl("http://l4fame.invalid/Debian/dists/testing/Release", proxy.url);
    assert.equal(via.ok, true);
    assert.deepEqual(seen, ["http://l4fame.invalid/Debian/dists/testing/Release"]);
  });

  it("authenticates to a proxy with credentials, as apt does (Basic), for http and for CONNECT", async () => {
    const auth: string[] = [];
    // A proxy that wants bob / p@ss:w0rd and records what it was sent.
    const expected = `Basic ${Buffer.from("bob:p@ss:w0rd").toString("base64")}`;
    const locked = await listen((req, res) => {
      auth.push(String(req.headers["proxy-authorization"]));
      res.statusCode = req.headers["proxy-authorization"] === expected ? 200 : 407;
      res.end();
    });
    locked.server.on("connect", (req: http.IncomingMessage, socket: Socket) => {
      auth.push(String(req.headers["proxy-authorization"]));
      socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
    });
    try {
      const withCreds = locked.url.replace("http://", "http://bob:p%40ss%3Aw0rd@");
      const url = "http://l4fame.invalid/Debian/dists/testing/Release";
      assert.deepEqual(await probeUrl(url, withCreds), { ok: true, detail: "HTTP 200" });
      assert.deepEqual(await probeUrl(url, locked.url), { ok: false, detail: "HTTP 407" });
      const tls = await probeUrl("https://l4fame.invalid/Debian/dists/testing/Release", withCreds);
      assert.deepEqual(tls, { ok: false, detail: "proxy CONNECT answered 403" });
      assert.deepEqual(auth, [expected, "undefined", expected]);
    } finally {
      locked.server.close();
    }
  });

  it("reports a closed port as unreachable", async () => {
    const closed = await listen(() => undefined);
    const url = closed.url;
    closed.server.close();
    const r = await probeUrl(`${url}/Debian/dists/testing/Release`, "", 5000);
    assert.equal(r.ok, false);
    assert.match(r.detail, /ECONNREFUSED/);
  });

  it("golden image check fails before building when L4FAME is configured but unreachable", async () => {
    const closed = await listen(() => undefined);
    const dead = `${closed.url}/Debian`;
    closed.server.close();
    const inputs = imageInputs({ l4fame: dead });
    const recipe = imageRecipe(inputs);
    const cacheDir = scratchDir("probe-cache");
    const imgIn: GoldenImageInputs = {
      cacheDir,
      key: imageKey(recipe, "h"),
      recipe,
      hook: "h",
      l4fame: dead,
      proxy: "",
    };
    const { provider } = await loadSerialized<GoldenImageInputs, GoldenImageOutputs>(
      () => new GoldenImageBuild("i", imgIn),
    );
    const failures = (await provider.check({}, imgIn)).failures ?? [];
    assert.match(
      failures.map((f) => f.reason).join(),
      /L4FAME repository fame:l4fame = ".*" is unreachable .*ECONNREFUSED.*unset fame:l4fame/,
    );
    // Through a proxy with credentials: the message names the proxy, not its credentials.
    const viaProxy = await provider.check(
      {},
      { ...imgIn, proxy: dead.replace("http://", "http://bob:s3cret@").replace("/Debian", "") },
    );
    const reasons = (viaProxy.failures ?? []).map((f) => f.reason).join();
    assert.match(reasons, /unreachable .* via proxy http:\/\/\*\*\*@127\.0\.0\.1:\d+\)/);
    assert.doesNotMatch(reasons, /bob|s3cret/);
    // And a recipe change is a new image: a replacement, never an in-place update.
    const { proxy: _proxy, ...recorded } = imgIn;
    const d = await provider.diff(imgIn.key, recorded as GoldenImageOutputs, {
      ...imgIn,
      key: "other",
    });
    fs.rmSync(cacheDir, { recursive: true, force: true });
    assert.deepEqual(d, { changes: true, replaces: ["key"], deleteBeforeReplace: false });
  });
});
