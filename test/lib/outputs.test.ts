import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { resolveRaw, validateConfig } from "../../lib/config";
import { hostsFile } from "../../lib/image";
import { envSh, seedFiles, seedSerial, shellQuote, sshCommand, sshConfig } from "../../lib/outputs";
import { clusterPlan } from "../../lib/plan";
import { encodeEd25519, generateEd25519 } from "../../lib/sshkey";

describe("stack outputs", () => {
  const plan = clusterPlan({ nodes: 2, hostbase: "node", octets123: "10.0.5" });

  it("SSH config and commands name each node, user and key file", () => {
    assert.equal(
      sshCommand(plan.nodes[1]!, "l4mdc", "~/.ssh/fame-dev"),
      "ssh -i ~/.ssh/fame-dev -o IdentitiesOnly=yes l4mdc@10.0.5.2",
    );
    const cfg = sshConfig(plan.nodes, "l4mdc", "~/.ssh/k");
    assert.equal((cfg.match(/^Host /gm) ?? []).length, 2);
    assert.match(
      cfg,
      /Host node01\n {2}HostName 10.0.5.1\n {2}User l4mdc\n {2}IdentityFile ~\/.ssh\/k/,
    );
  });

  it("env.sh carries the effective FAME_* values and survives sh", () => {
    const raw = resolveRaw(
      (k) => ({ dir: "/srv/it's", user: "dev", proxy: "http://p:1" })[k as string],
      {},
      { project: "fame", stack: "t" },
    );
    const text = envSh(validateConfig(raw).config, "fame/t");
    assert.match(text, /^export FAME_FAM='\/srv\/it'\\''s\/FAM'$/m);
    assert.match(text, /^export FAME_FAM_MODE='ivshmem'$/m);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-env-"));
    fs.writeFileSync(path.join(dir, "env.sh"), text);
    const out = execFileSync(
      "sh",
      ["-c", `. ${dir}/env.sh && echo "$FAME_DIR|$FAME_USER|$FAME_VDRAM|$FAME_PROXY"`],
      { encoding: "utf8" },
    );
    fs.rmSync(dir, { recursive: true });
    assert.equal(out.trim(), "/srv/it's|dev|786432|http://p:1");
  });

  it("env.sh leaves out a proxy with credentials, and says so", () => {
    const env = (proxy: string) =>
      envSh(
        validateConfig(
          resolveRaw((k) => (k === "proxy" ? proxy : undefined), {}, { project: "f", stack: "t" }),
        ).config,
        "f/t",
      );
    for (const proxy of ["http://bob:s3cret@proxy.lan:3128", "https://token@proxy.lan/"]) {
      const text = env(proxy);
      assert.doesNotMatch(text, /bob|s3cret|token/);
      assert.doesNotMatch(text, /FAME_PROXY=/);
      assert.match(text, /^# FAME_PROXY is not written: fame:proxy carries credentials/m);
      // The other values are all there.
      assert.match(text, /^export FAME_MIRROR='http:\/\/deb.debian.org\/debian'$/m);
    }
    assert.match(env("http://proxy.lan:3128"), /^export FAME_PROXY='http:\/\/proxy.lan:3128'$/m);
    assert.doesNotMatch(env("http://proxy.lan:3128"), /not written/);
  });

  it("seed files carry the stack's identity (user, sudo rule, /etc/hosts) with the credentials", () => {
    const id = { user: "dev", hostbase: "tm", octets123: "10.1.2" };
    const files = seedFiles(id, "ssh-ed25519 AAAA k", "PRIV", "pw", "http://p:1");
    assert.equal(files.user, "dev\n");
    assert.equal(files.sudoers, "dev ALL=(ALL) NOPASSWD:ALL\n");
    assert.equal(files.hosts, hostsFile("tm", "10.1.2"));
    assert.match(files.hosts ?? "", /^10\.1\.2\.254\ttorms$/m);
    assert.match(files.hosts ?? "", /^10\.1\.2\.2\ttm02$/m);
    assert.equal(files.authorized_keys, "ssh-ed25519 AAAA k\n");
    assert.equal(files.id_ed25519, "PRIV");
    assert.equal(files.password, "pw");
    assert.match(files["apt-proxy.conf"] ?? "", /http:\/\/p:1/);
    const other = seedFiles({ user: "l4mdc", hostbase: "node", octets123: "192.168.42" }, "k", "p");
    assert.equal(other.user, "l4mdc\n");
    assert.match(other.hosts ?? "", /^192\.168\.42\.1\tnode01$/m);
  });

  it("the seed serial follows the identity only: a new user or subnet restarts nodes, a new secret does not", () => {
    const id = { user: "dev", hostbase: "tm", octets123: "10.1.2" };
    assert.match(seedSerial(id), /^[0-9a-f]{20}$/);
    assert.equal(seedSerial(id), seedSerial({ ...id }));
    assert.notEqual(seedSerial({ ...id, user: "ops" }), seedSerial(id));
    assert.notEqual(seedSerial({ ...id, octets123: "10.1.3" }), seedSerial(id));
    assert.notEqual(seedSerial({ ...id, hostbase: "tn" }), seedSerial(id));
  });

  it("quotes for POSIX sh", () => {
    assert.equal(shellQuote("a'b"), `'a'\\''b'`);
  });
});

describe("SSH keys", () => {
  it("writes keys that ssh-keygen reads back to the same public key", () => {
    const pair = generateEd25519("fame-test");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-key-"));
    const file = path.join(dir, "id");
    fs.writeFileSync(file, pair.privateKey, { mode: 0o600 });
    const derived = execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" }).trim();
    fs.rmSync(dir, { recursive: true });
    assert.equal(derived, pair.publicKey);
    assert.match(pair.publicKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\S+ fame-test$/);
  });

  it("encodes deterministically from the key material", () => {
    const seed = Buffer.alloc(32, 1);
    const pub = Buffer.alloc(32, 2);
    assert.deepEqual(encodeEd25519(seed, pub, "c", 7), encodeEd25519(seed, pub, "c", 7));
    assert.throws(() => encodeEd25519(Buffer.alloc(31), pub, "c", 7), RangeError);
  });

  it("makes a different key every time", () => {
    assert.notEqual(generateEd25519("a").publicKey, generateEd25519("a").publicKey);
  });
});
