import * as assert from "node:assert/strict";
import { classify, isHostError, run } from "../../lib/host/exec";

describe("host command runner", () => {
  it("classifies libvirt failures: not found is not unreachable", () => {
    assert.equal(
      classify(
        "error: failed to get domain 'node01'\nerror: Domain not found: no domain with matching name 'node01'",
      ),
      "not-found",
    );
    assert.equal(classify("error: failed to get network 'br_node'"), "not-found");
    // A reason printed after "failed to get" decides: this lookup failed, nothing is gone.
    assert.equal(
      classify(
        "error: failed to get domain 'node01'\nerror: access denied: 'domain-getattr' forbidden",
      ),
      "other",
    );
    assert.equal(
      classify("error: failed to get network 'br_node'\nerror: internal error: lock failed"),
      "other",
    );
    assert.equal(
      classify(
        "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory",
      ),
      "unreachable",
    );
    assert.equal(
      classify("error: End of file while reading data: Input/output error"),
      "unreachable",
    );
    assert.equal(classify("error: internal error: something else"), "other");
  });

  it("passes arguments as an array (no shell) and returns stdout", async () => {
    assert.equal(await run("printf", ["%s|", "a b", "$(x)", ";rm"]), "a b|$(x)|;rm|");
    assert.equal(await run("cat", [], { input: "from stdin" }), "from stdin");
  });

  it("rejects with a classified HostError carrying the command and stderr", async () => {
    await assert.rejects(
      run("sh", ["-c", "echo 'error: failed to connect to the hypervisor' >&2; exit 1"]),
      (e: unknown) => {
        assert.ok(isHostError(e, "unreachable"));
        assert.deepEqual(e.command.slice(0, 2), ["sh", "-c"]);
        assert.match(e.stderr, /failed to connect/);
        return true;
      },
    );
    await assert.rejects(
      run("no-such-tool-fame", []),
      (e: unknown) =>
        isHostError(e, "missing-tool") && /is no-such-tool-fame installed/.test(e.message),
    );
  });

  it("kills a command that outlives its timeout", async () => {
    await assert.rejects(run("sleep", ["5"], { timeoutMs: 200 }), /killed by SIGKILL/);
  });

  it("traces every command when FAME_VERBOSE is set", async () => {
    const seen: string[] = [];
    const original = console.error;
    process.env.FAME_VERBOSE = "1";
    console.error = (m: string) => seen.push(m);
    try {
      await run("true", ["--flag"]);
    } finally {
      console.error = original;
      delete process.env.FAME_VERBOSE;
    }
    assert.deepEqual(seen, ["fame: $ true --flag"]);
  });

  it("traces every command with FAME_VERBOSE set (fame:verbose's promise for host commands), and only then", async () => {
    const said: string[] = [];
    const saved = console.error;
    const env = process.env.FAME_VERBOSE;
    console.error = (...m: unknown[]) => said.push(m.join(" "));
    try {
      process.env.FAME_VERBOSE = "1";
      await run("printf", ["%s", "a b"]);
      delete process.env.FAME_VERBOSE;
      await run("true", []);
    } finally {
      console.error = saved;
      if (env === undefined) delete process.env.FAME_VERBOSE;
      else process.env.FAME_VERBOSE = env;
    }
    assert.deepEqual(said, ["fame: $ printf %s a b"]);
  });
});
