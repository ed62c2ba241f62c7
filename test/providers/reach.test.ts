/**
 * The reachability check's authoritative answer as root: `runuser -u <qemu
 * user> -- test -x`, which sees what the mode bits cannot (ACLs, here a group
 * the model was not told about). Root for chown, like the FAM-file tests.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { groupId } from "../../lib/host/famfile";
import { type QemuUser, reachRefusals, systemQemuUser } from "../../lib/host/reach";

describe("reach as root: runuser answers where the mode bits refuse", () => {
  let tmp: string;
  let nobody: QemuUser;
  before(() => {
    assert.equal(process.getuid?.(), 0, "these tests run as root (npm run test:unit)");
  });
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fame-reach-root-"));
    fs.chmodSync(tmp, 0o755);
    const conf = path.join(tmp, "qemu.conf");
    fs.writeFileSync(conf, 'user = "nobody"\n');
    const facts = systemQemuUser(conf);
    assert.ok("user" in facts);
    nobody = facts.user;
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const target = (p: string) => [
    {
      key: "dir",
      value: p,
      path: p,
      searchTarget: true,
      chmodded: [],
      example: "/var/lib/fame/p-s",
    },
  ];

  it("a group the model does not know about still opens the directory: no refusal", async () => {
    const gid = await groupId("nogroup");
    assert.ok(gid !== undefined, "Debian's nogroup");
    const d = path.join(tmp, "grp");
    fs.mkdirSync(d);
    fs.chownSync(d, 0, gid);
    fs.chmodSync(d, 0o710);
    // Told no groups, the mode bits refuse (other has no x); the kernel lets nobody in through nogroup.
    const blind = { ...nobody, gids: [] };
    assert.deepEqual(reachRefusals(target(`${d}/fame`), blind, 0o022), {
      refusals: [],
      unjudged: [],
    });
    fs.chmodSync(d, 0o700);
    assert.match(
      reachRefusals(target(`${d}/fame`), blind, 0o022).refusals[0] ?? "",
      new RegExp(`${d} \\(owner root:nogroup, mode 0700\\) does not let nobody search it`),
    );
  });

  it("when runuser cannot answer (no such user), says it could not tell instead of refusing or passing silently", () => {
    const d = path.join(tmp, "locked");
    fs.mkdirSync(d, { mode: 0o700 });
    const ghost = { ...nobody, name: "fame-no-such-user" };
    assert.deepEqual(reachRefusals(target(`${d}/fame`), ghost, 0o022), {
      refusals: [],
      unjudged: [
        `cannot tell whether fame-no-such-user (QEMU's user) can reach ${d} on the way to fame:dir = "${d}/fame": its mode bits say no, and runuser -u fame-no-such-user could not tell`,
      ],
    });
  });
});
