/**
 * lib/host/virsh.ts against a fake `virsh` on PATH (a shell script this test
 * writes; no libvirtd): a lookup that fails is reported as "not found" only
 * when libvirt's own list confirms the name is absent, and a paused domain is
 * resumed, not taken for running.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { isHostError } from "../../lib/host/exec";
import * as virsh from "../../lib/host/virsh";

/**
 * The fake answers `virsh -q -c fake:///<scenario> <command> <name>`:
 * - lookups (dumpxml, domstate, domuuid, net-info, net-dumpxml, destroy,
 *   net-destroy) fail with the stderr in $dir/<scenario>.err, if any;
 * - `list`/`net-list --all --name` print $dir/<scenario>.list, or fail with
 *   $dir/<scenario>.listerr;
 * - domstate prints $dir/<scenario>.state; start fails "already active" when
 *   that state is not "shut off"; resume succeeds;
 * every call is appended to $dir/calls.
 */
const FAKE = `#!/bin/sh
dir=$(dirname "$0")
scenario=\${3#fake:///}
shift 3
echo "$*" >>"$dir/calls"
cmd=$1
case $cmd in
list|net-list)
  if [ -f "$dir/$scenario.listerr" ]; then cat "$dir/$scenario.listerr" >&2; exit 1; fi
  cat "$dir/$scenario.list" 2>/dev/null; exit 0 ;;
start)
  if [ "$(cat "$dir/$scenario.state")" != "shut off" ]; then
    echo "error: Domain '$2' is already active" >&2; exit 1
  fi
  exit 0 ;;
resume) echo "Domain '$2' resumed"; exit 0 ;;
esac
if [ -f "$dir/$scenario.err" ]; then cat "$dir/$scenario.err" >&2; exit 1; fi
case $cmd in
domstate) cat "$dir/$scenario.state" ;;
net-info) printf 'Name: %s\\nActive: yes\\nAutostart: yes\\n' "$2" ;;
*) echo "<ok/>" ;;
esac
`;

// What virsh 9 prints for a domain it could not look up, for any reason: not
// found, access denied, internal error (it drops libvirt's own message).
const LOOKUP_FAILED = "error: failed to get domain 'n1'";
const NO_DOMAIN =
  "error: failed to get domain 'n1'\nerror: Domain not found: no domain with matching name 'n1'";
const NO_NETWORK =
  "error: failed to get network 'br_n'\nerror: Network not found: no network with matching name 'br_n'";
const ACL_DOMAIN =
  "error: failed to get domain 'n1'\nerror: access denied: 'domain-getattr' forbidden for user 'fame'";
const INTERNAL_NETWORK =
  "error: failed to get network 'br_n'\nerror: internal error: cannot lock network state";
const UNREACHABLE =
  "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory";

describe("virsh module (fake virsh on PATH)", () => {
  let dir: string;
  let savedPath: string | undefined;

  /** Sets up scenario `name`: lookup stderr, the names `list` prints (or its stderr), the domstate. */
  const scenario = (
    name: string,
    s: { err?: string; list?: string[]; listErr?: string; state?: string },
  ): string => {
    const put = (ext: string, text: string | undefined) => {
      if (text !== undefined) fs.writeFileSync(path.join(dir, `${name}.${ext}`), `${text}\n`);
    };
    put("err", s.err);
    put("list", s.list?.join("\n"));
    put("listerr", s.listErr);
    put("state", s.state);
    return `fake:///${name}`;
  };
  const calls = () =>
    fs.existsSync(path.join(dir, "calls"))
      ? fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n")
      : [];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-fake-virsh-"));
    fs.writeFileSync(path.join(dir, "virsh"), FAKE, { mode: 0o755 });
    savedPath = process.env.PATH;
    process.env.PATH = `${dir}:${savedPath}`;
  });
  afterEach(() => {
    process.env.PATH = savedPath;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reports a domain or network gone when libvirt's list confirms it is absent", async () => {
    const uri = scenario("gone", { err: LOOKUP_FAILED, list: ["other"] });
    assert.equal(await virsh.domainXml(uri, "n1"), undefined);
    assert.equal(await virsh.domainState(uri, "n1"), undefined);
    assert.ok(calls().includes("list --all --name"), calls().join("; "));
    assert.equal(
      await virsh.domainUuid(scenario("gone2", { err: NO_DOMAIN, list: [] }), "n1"),
      undefined,
    );
    const net = scenario("netgone", { err: NO_NETWORK, list: [] });
    assert.equal(await virsh.networkInfo(net, "br_n"), undefined);
    assert.ok(calls().includes("net-list --all --name"), calls().join("; "));
  });

  it("a failed lookup of a domain libvirt still lists (e.g. access denied) is an error, not a deletion", async () => {
    const denied = scenario("denied", { err: LOOKUP_FAILED, list: ["n1"] });
    for (const look of [virsh.domainXml, virsh.domainState, virsh.domainUuid]) {
      await assert.rejects(look(denied, "n1"), (e: unknown) => {
        assert.ok(isHostError(e, "other"), String(e));
        assert.match(e.message, /failed to get domain 'n1'; libvirt still lists domain n1/);
        assert.equal(e.stderr, LOOKUP_FAILED);
        return true;
      });
    }
    // With libvirt's reason printed, that reason decides.
    const uri = scenario("acl", { err: ACL_DOMAIN, list: ["n1"] });
    await assert.rejects(virsh.domainXml(uri, "n1"), (e: unknown) => {
      assert.ok(isHostError(e), String(e));
      assert.notEqual(e.kind, "not-found");
      assert.match(e.stderr, /access denied/);
      return true;
    });
    await assert.rejects(virsh.domainState(uri, "n1"), /access denied/);
  });

  it("a lookup libvirt calls 'not found' while its list still holds the name is an error", async () => {
    const uri = scenario("listed", { err: NO_DOMAIN, list: ["x", "n1"] });
    await assert.rejects(virsh.domainXml(uri, "n1"), (e: unknown) => {
      assert.ok(isHostError(e, "other"), String(e));
      assert.match(e.message, /libvirt still lists domain n1.*not a deleted domain/);
      assert.match(e.stderr, /no domain with matching name 'n1'/);
      return true;
    });
    // The same holds for a state change that would count "not found" as done.
    await assert.rejects(virsh.destroyDomain(uri, "n1"), /still lists domain n1/);
    const net = scenario("netlisted", { err: NO_NETWORK, list: ["br_n"] });
    await assert.rejects(virsh.networkXml(net, "br_n"), /still lists network br_n/);
  });

  it("an internal error on a network lookup is an error, not a deletion", async () => {
    const uri = scenario("internal", { err: INTERNAL_NETWORK, list: ["br_n"] });
    await assert.rejects(virsh.networkInfo(uri, "br_n"), (e: unknown) => {
      assert.ok(isHostError(e, "other"), String(e));
      assert.match(e.stderr, /internal error: cannot lock network state/);
      return true;
    });
  });

  it("when the list itself fails, the lookup fails too (unreachable stays unreachable)", async () => {
    const uri = scenario("nolist", { err: NO_DOMAIN, listErr: UNREACHABLE });
    await assert.rejects(virsh.domainXml(uri, "n1"), (e: unknown) => {
      assert.ok(isHostError(e, "unreachable"), String(e));
      assert.match(e.message, /cannot confirm that domain n1 is gone: .*failed to connect/);
      assert.match(e.stderr, /no domain with matching name 'n1'/, "the lookup's own stderr");
      return true;
    });
    const other = scenario("badlist", { err: NO_NETWORK, listErr: "error: internal error: x" });
    await assert.rejects(
      virsh.networkInfo(other, "br_n"),
      (e: unknown) => isHostError(e, "other") && /cannot confirm that network br_n/.test(e.message),
    );
  });

  it("start resumes a paused domain instead of counting 'already active' as running", async () => {
    const uri = scenario("paused", { state: "paused" });
    await virsh.startDomain(uri, "n1");
    assert.deepEqual(calls(), ["start n1", "domstate n1", "resume n1"]);
  });

  it("start of a running domain is done; of one in another state it fails, naming the state", async () => {
    await virsh.startDomain(scenario("running", { state: "running" }), "n1");
    assert.deepEqual(calls(), ["start n1", "domstate n1"]);
    await assert.rejects(
      virsh.startDomain(scenario("crashed", { state: "crashed" }), "n1"),
      /libvirt domain n1 is "crashed", not running/,
    );
    await virsh.startDomain(scenario("off", { state: "shut off" }), "n1");
  });
});
