/**
 * .ci/host-stack.sh, the CI step that swaps the host's QEMU and libvirt for
 * Debian 13's (bookworm-backports) and back, against fake dpkg-query, apt-get
 * and pgrep: the restore must put back exactly the recorded packages (libvirt
 * 11 adds packages libvirt 9 does not have), no package script may start a
 * service meanwhile, and nothing is swapped while a QEMU or libvirtd runs.
 */
import * as assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const SCRIPT = path.join(__dirname, "..", "..", ".ci", "host-stack.sh");

const BOOKWORM = [
  "libvirt-clients=9.0.0-4+deb12u2",
  "libvirt-daemon=9.0.0-4+deb12u2",
  "libvirt0=9.0.0-4+deb12u2",
  "qemu-system-x86=1:7.2+dfsg-7+deb12u18+b3",
  "qemu-utils=1:7.2+dfsg-7+deb12u18+b3",
  "systemd=252.39-1~deb12u2",
];

/**
 * apt-get: `install pkg/bookworm-backports` upgrades pkg and adds the split
 * packages libvirt 11 brings; `pkg=ver` sets a version, `pkg-` removes. Each
 * call is logged with whether a denying policy-rc.d was in place.
 */
const FAKE_APT = `#!/usr/bin/env python3
import json, os, sys
db = os.environ["FAKE_DPKG_DB"]
pkgs = dict(l.split("=", 1) for l in open(db).read().split())
policy = os.environ["FAME_CI_POLICY_RC"]
denies = os.path.exists(policy) and "exit 101" in open(policy).read()
with open(os.environ["FAKE_APT_LOG"], "a") as f:
    f.write(json.dumps({"args": sys.argv[1:], "policyDenies": denies}) + "\\n")
if sys.argv[1] == "install":
    for a in sys.argv[2:]:
        if a.startswith("-"):
            continue
        if a.endswith("/bookworm-backports"):
            p = a.split("/")[0]
            pkgs[p] = "11.3.0-2~bpo12+1" if p.startswith("libvirt") else "1:10.0.2+ds-2+deb13u1~bpo12+1"
            if p == "libvirt-daemon-system":
                pkgs["libvirt-common"] = "11.3.0-2~bpo12+1"
                pkgs["libvirt-daemon"] = "11.3.0-2~bpo12+1"
                pkgs["libvirt0"] = "11.3.0-2~bpo12+1"
        elif a.endswith("-") and not os.environ.get("FAKE_APT_KEEPS"):
            pkgs.pop(a[:-1], None)
        elif "=" in a:
            p, v = a.split("=", 1)
            pkgs[p] = v
open(db, "w").write("\\n".join(f"{p}={v}" for p, v in sorted(pkgs.items())) + "\\n")
`;

const FAKE_DPKG_QUERY = `#!/bin/sh
sed 's/^/ii  /' "$FAKE_DPKG_DB"
`;

/** dpkg --verify: a file the restore lost, when FAKE_DPKG_MISSING names one. */
const FAKE_DPKG = `#!/bin/sh
echo "$*" >>"$FAKE_DPKG_LOG"
[ -n "$FAKE_DPKG_MISSING" ] && echo "missing     $FAKE_DPKG_MISSING"
exit 0
`;

const FAKE_PGREP = `#!/bin/sh
[ -s "$FAKE_PGREP_PIDS" ] && cat "$FAKE_PGREP_PIDS" && exit 0
exit 1
`;

const FAKE_QEMU = `#!/bin/sh
v=$(sed -n 's/^qemu-system-x86=//p' "$FAKE_DPKG_DB")
echo "QEMU emulator version \${v#1:}"
`;

const FAKE_LIBVIRTD = `#!/bin/sh
v=$(sed -n 's/^libvirt-daemon=//p' "$FAKE_DPKG_DB")
echo "libvirtd (libvirt) \${v%%-*}"
`;

describe(".ci/host-stack.sh (fake apt-get, dpkg-query and pgrep)", function () {
  this.timeout(30_000);
  let tmp: string;
  let env: NodeJS.ProcessEnv;
  let db: string;
  let aptLog: string;
  let sources: string;
  let sleeper: ChildProcess | undefined;

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fame-host-stack-"));
    const bin = path.join(tmp, "bin");
    fs.mkdirSync(bin);
    for (const [name, body] of [
      ["apt-get", FAKE_APT],
      ["dpkg-query", FAKE_DPKG_QUERY],
      ["dpkg", FAKE_DPKG],
      ["pgrep", FAKE_PGREP],
      ["qemu-system-x86_64", FAKE_QEMU],
      ["libvirtd", FAKE_LIBVIRTD],
    ])
      fs.writeFileSync(path.join(bin, name), body, { mode: 0o755 });
    db = path.join(tmp, "dpkg.db");
    fs.writeFileSync(db, `${BOOKWORM.join("\n")}\n`);
    aptLog = path.join(tmp, "apt.log");
    sources = path.join(tmp, "sources.list.d");
    fs.mkdirSync(sources);
    env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      FAKE_DPKG_DB: db,
      FAKE_APT_LOG: aptLog,
      FAKE_DPKG_LOG: path.join(tmp, "dpkg.log"),
      FAKE_PGREP_PIDS: path.join(tmp, "pids"),
      FAME_CI_STATE: path.join(tmp, "state"),
      FAME_CI_APT_SOURCES: sources,
      FAME_CI_POLICY_RC: path.join(tmp, "policy-rc.d"),
    };
  });

  afterEach(() => {
    sleeper?.kill();
    sleeper = undefined;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const run = (...args: string[]) =>
    spawnSync("bash", [SCRIPT, ...args], { env, encoding: "utf8" });
  const calls = (): { args: string[]; policyDenies: boolean }[] =>
    fs.existsSync(aptLog)
      ? fs
          .readFileSync(aptLog, "utf8")
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l))
      : [];
  const installs = () => calls().filter((c) => c.args[0] === "install");

  it("installs QEMU 10 and libvirt 11 from backports, then restores exactly the recorded packages", () => {
    const up = run("backports");
    assert.equal(up.status, 0, up.stderr);
    assert.match(up.stdout, /host-stack: QEMU 10\.0\.2.*, libvirt 11\.3\.0/);
    assert.ok(fs.existsSync(path.join(sources, "fame-ci-bookworm-backports.sources")));
    const [swap] = installs();
    for (const p of ["qemu-system-x86", "qemu-utils", "libvirt-daemon-system", "libvirt-clients"])
      assert.ok(swap?.args.includes(`${p}/bookworm-backports`), p);
    assert.ok(!swap?.args.some((a) => a.startsWith("systemd")), "systemd stays Debian 12's");
    assert.ok(
      calls().every((c) => c.policyDenies),
      "no service may start while packages change",
    );
    assert.ok(!fs.existsSync(env.FAME_CI_POLICY_RC as string), "its policy-rc.d is removed");

    const back = run("restore");
    assert.equal(back.status, 0, back.stderr);
    assert.match(back.stdout, /host-stack: QEMU 7\.2.*, libvirt 9\.0\.0/);
    assert.equal(fs.readFileSync(db, "utf8"), `${BOOKWORM.join("\n")}\n`);
    const restore = installs()[1];
    assert.ok(restore?.args.includes("--allow-downgrades"));
    assert.ok(restore?.args.includes("qemu-system-x86=1:7.2+dfsg-7+deb12u18+b3"));
    assert.ok(restore?.args.includes("libvirt-common-"), "what the swap added is removed");
    assert.ok(restore?.policyDenies);
    // libvirt 11 moved files of libvirt 9's packages into new ones: the restored packages are
    // unpacked again, and dpkg then finds every file of theirs.
    const again = installs()[2];
    assert.ok(again?.args.includes("--reinstall"));
    assert.ok(again?.args.includes("libvirt0=9.0.0-4+deb12u2"));
    assert.ok(again?.args.includes("qemu-system-x86=1:7.2+dfsg-7+deb12u18+b3"));
    assert.match(
      fs.readFileSync(env.FAKE_DPKG_LOG as string, "utf8"),
      /--verify .*libvirt0 .*qemu-system-x86/,
    );
    assert.ok(!fs.existsSync(path.join(sources, "fame-ci-bookworm-backports.sources")));
    assert.deepEqual(fs.readdirSync(env.FAME_CI_STATE as string), [], "the record is gone");
  });

  it("a restore with nothing recorded changes no package", () => {
    const r = run("restore");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(installs(), []);
    assert.match(r.stdout, /QEMU 7\.2/);
  });

  it("refuses to swap while a QEMU or libvirtd runs, changing nothing", () => {
    sleeper = spawn("sleep", ["30"]);
    fs.writeFileSync(env.FAKE_PGREP_PIDS as string, `${sleeper.pid}\n`);
    const r = run("backports");
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /refusing to swap QEMU\/libvirt while these run/);
    assert.match(r.stderr, new RegExp(`${sleeper.pid}: sleep 30`));
    assert.deepEqual(calls(), []);
    assert.ok(!fs.existsSync(path.join(sources, "fame-ci-bookworm-backports.sources")));
    assert.equal(fs.readFileSync(db, "utf8"), `${BOOKWORM.join("\n")}\n`);
  });

  it("a restore after which a restored package misses a file fails, naming it", () => {
    assert.equal(run("backports").status, 0);
    env.FAKE_DPKG_MISSING = "/usr/share/libvirt/schemas/domain.rng";
    const r = run("restore");
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /files of the restored packages are missing/);
    assert.match(r.stderr, /schemas\/domain\.rng/);
  });

  it("a restore that leaves the packages different from the record fails and keeps the record", () => {
    assert.equal(run("backports").status, 0);
    env.FAKE_APT_KEEPS = "1";
    const r = run("restore");
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /differ from .*host-stack\.packages after the restore/);
    assert.ok(fs.existsSync(path.join(env.FAME_CI_STATE as string, "host-stack.packages")));
  });
});
