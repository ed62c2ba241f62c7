/**
 * Reachability probe for apt repositories (the optional L4FAME repo), through
 * the configured proxy, so an unreachable repo fails before a long build.
 */
import * as http from "node:http";
import * as https from "node:https";
import * as tls from "node:tls";

export interface ProbeResult {
  ok: boolean;
  /** HTTP status, or the network error. */
  detail: string;
}

/** The Proxy-Authorization header for a proxy URL's `user:password@`, as apt sends it (Basic). */
export function proxyAuthHeaders(proxy: URL): Record<string, string> {
  if (proxy.username === "" && proxy.password === "") return {};
  const user = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { "proxy-authorization": `Basic ${Buffer.from(user, "utf8").toString("base64")}` };
}

/** GETs `url` (via `proxy` when set) and reports whether it answered 2xx/3xx. */
export function probeUrl(url: string, proxy: string, timeoutMs = 15_000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const target = new URL(url);
    const done = (ok: boolean, detail: string) => resolve({ ok, detail });
    const onResponse = (res: http.IncomingMessage) => {
      res.resume();
      const status = res.statusCode ?? 0;
      done(status >= 200 && status < 400, `HTTP ${status}`);
    };
    const fail = (e: Error) => done(false, e.message);
    let req: http.ClientRequest;
    if (!proxy) {
      const mod = target.protocol === "https:" ? https : http;
      req = mod.get(target, { timeout: timeoutMs }, onResponse);
    } else if (target.protocol === "http:") {
      // Plain HTTP through a proxy: absolute URI in the request line.
      const p = new URL(proxy);
      req = http.get(
        {
          host: p.hostname,
          port: p.port || 80,
          path: target.href,
          headers: { host: target.host, ...proxyAuthHeaders(p) },
          timeout: timeoutMs,
        },
        onResponse,
      );
    } else {
      // HTTPS through a proxy: CONNECT, then TLS over the tunnel.
      const p = new URL(proxy);
      req = http.request({
        host: p.hostname,
        port: p.port || 80,
        method: "CONNECT",
        path: `${target.hostname}:${target.port || 443}`,
        headers: proxyAuthHeaders(p),
        timeout: timeoutMs,
      });
      req.on("connect", (res, socket) => {
        if (res.statusCode !== 200) return done(false, `proxy CONNECT answered ${res.statusCode}`);
        const secure = tls.connect({ socket, servername: target.hostname });
        const inner = https.get(
          target,
          { createConnection: () => secure, timeout: timeoutMs },
          onResponse,
        );
        inner.on("error", fail);
      });
      req.end();
    }
    req.on("timeout", () => {
      req.destroy(new Error(`no answer within ${timeoutMs} ms`));
    });
    req.on("error", fail);
  });
}

/** URL of the Release file of an apt repository's suite. */
export function releaseUrl(repo: string, suite: string): string {
  return `${repo.replace(/\/+$/, "")}/dists/${suite}/Release`;
}
