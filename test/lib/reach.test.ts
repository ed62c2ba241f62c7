import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  currentUmask,
  parseId,
  parseQemuConf,
  type QemuUser,
  reachRefusals,
  sessionQemuUser,
  systemQemuUser,
} from "../../lib/host/reach";
import {
  type Blocked,
  modeAllowsSearch,
  type PathInfo,
  type QemuIdentity,
  type ReachOptions,
  reachBlock,
  reachMessage,
  reachTargets,
} from "../../lib/reach";

const QEMU: QemuIdentity = { name: "libvirt-qemu", uid: 64055, gids: [64055, 110] };
const dir = (mode: number, uid = 0, gid = 0): PathInfo => ({ kind: "dir", mode, uid, gid });
const link = (to: string): PathInfo => ({ kind: "symlink", mode: 0o777, uid: 0, gid: 0, link: to });

/** A Debian-like tree: / /var /var/lib /srv 0755 root, /root 0700 root, /home/u 0700 u. */
function tree(extra: Record<string, PathInfo> = {}): (p: string) => PathInfo | undefined {
  const fsMap: Record<string, PathInfo> = {
    "/": dir(0o755),
    "/var": dir(0o755),
    "/var/lib": dir(0o755),
    "/srv": dir(0o755),
    "/root": dir(0o700),
    "/home": dir(0o755),
    "/home/u": dir(0o700, 1000, 1000),
    ...extra,
  };
  return (p) => fsMap[p];
}

const walk = (target: string, lookup = tree(), opts: Partial<ReachOptions> = {}, who = QEMU) =>
  reachBlock(target, who, lookup, { searchTarget: false, ...opts });
const blockedAt = (r: ReturnType<typeof reachBlock>) => r.blocked?.dir;

describe("reach: which directory keeps QEMU's user from a path", () => {
  describe("mode bits (exactly one class applies, as in the kernel)", () => {
    it("owner class: the owner's x decides, whatever group and other say", () => {
      assert.equal(modeAllowsSearch(dir(0o100, QEMU.uid), QEMU), true);
      assert.equal(modeAllowsSearch(dir(0o677, QEMU.uid, 64055), QEMU), false);
    });
    it("group class: the primary or any supplementary group, whatever other says", () => {
      assert.equal(modeAllowsSearch(dir(0o010, 0, 64055), QEMU), true);
      assert.equal(modeAllowsSearch(dir(0o750, 0, 110), QEMU), true, "supplementary group");
      assert.equal(modeAllowsSearch(dir(0o701, 0, 110), QEMU), false, "group without x");
      assert.equal(modeAllowsSearch(dir(0o750, 0, 111), QEMU), false, "not a member");
    });
    it("other class: only other's x", () => {
      assert.equal(modeAllowsSearch(dir(0o001), QEMU), true);
      assert.equal(modeAllowsSearch(dir(0o776), QEMU), false);
    });
    it("uid 0 gets no exemption (libvirt clears QEMU's capabilities)", () => {
      const root = { name: "root", uid: 0, gids: [0] };
      assert.equal(modeAllowsSearch(dir(0o700, 1000, 1000), root), false);
      assert.equal(modeAllowsSearch(dir(0o700, 0, 0), root), true);
    });
  });

  describe("walking a path", () => {
    it("a reachable path passes", () => {
      assert.deepEqual(walk("/var/lib"), { unjudged: [] });
      assert.deepEqual(walk("/var/lib", tree(), { searchTarget: true }), { unjudged: [] });
    });
    it("root-owned 0700 /root blocks everything below it, named with its mode and owner", () => {
      const r = walk("/root/fame/FAM");
      assert.deepEqual(r.blocked, {
        dir: "/root",
        info: { mode: 0o700, uid: 0, gid: 0 },
        created: false,
      });
    });
    it("a 0700 home blocks, and only the first blocking ancestor is named", () => {
      const lookup = tree({ "/home/u/x": dir(0o700, 1000, 1000) });
      assert.equal(blockedAt(walk("/home/u/x/y/FAM", lookup)), "/home/u");
    });
    it("a group the user is in opens a 0750 directory; one it is not in does not", () => {
      assert.equal(
        blockedAt(walk("/srv/g/FAM", tree({ "/srv/g": dir(0o750, 0, 110) }))),
        undefined,
      );
      assert.equal(blockedAt(walk("/srv/g/FAM", tree({ "/srv/g": dir(0o750, 0, 7) }))), "/srv/g");
    });
    it("the target itself is judged only when QEMU opens files in it", () => {
      const lookup = tree({ "/srv/d": dir(0o700) });
      assert.equal(blockedAt(walk("/srv/d", lookup)), undefined, "a file's path: only ancestors");
      assert.equal(blockedAt(walk("/srv/d", lookup, { searchTarget: true })), "/srv/d");
    });
    it("missing tails pass when fame's mode for them is not given", () => {
      assert.deepEqual(walk("/var/lib/fame/a/b", tree(), { searchTarget: true }), {
        unjudged: [],
      });
    });
    it("missing tails are judged as fame creates them: 0755 passes, a umask that takes o+x blocks", () => {
      const as = (mode: number) => () => ({ mode, uid: 0, gid: 0 });
      const ok = walk("/var/lib/fame/s", tree(), { searchTarget: true, created: as(0o755) });
      assert.equal(blockedAt(ok), undefined);
      const r = walk("/var/lib/fame/s", tree(), { searchTarget: true, created: as(0o700) });
      assert.deepEqual(r.blocked, {
        dir: "/var/lib/fame",
        info: { mode: 0o700, uid: 0, gid: 0 },
        created: true,
      });
      // Only the directories searched on the way: the missing leaf of a file path is not.
      assert.equal(blockedAt(walk("/var/lib/FAM", tree(), { created: as(0o700) })), undefined);
    });
    it("a setgid parent hands its group to what fame creates", () => {
      const lookup = tree({ "/srv/sg": dir(0o2775, 0, 64055) });
      const r = walk("/srv/sg/new/deeper/FAM", lookup, {
        created: () => ({ mode: 0o750, uid: 0, gid: 0 }),
      });
      assert.equal(blockedAt(r), undefined);
      const plain = tree({ "/srv/sg": dir(0o0775, 0, 64055) });
      const r2 = walk("/srv/sg/new/FAM", plain, {
        created: () => ({ mode: 0o750, uid: 0, gid: 0 }),
      });
      assert.equal(blockedAt(r2), "/srv/sg/new");
    });
    it("symlinks: the link's own directory and every directory of its target need search", () => {
      // The target is reachable, the link lives in a 0700 home.
      const inHome = tree({ "/home/u/fame": link("/var/lib") });
      assert.equal(blockedAt(walk("/home/u/fame/FAM", inHome)), "/home/u");
      // The link is reachable, its target is under /root.
      const toRoot = tree({ "/srv/fame": link("/root/fame") });
      assert.equal(blockedAt(walk("/srv/fame/FAM", toRoot)), "/root");
      // Relative: resolved against the link's directory, ".." physically.
      const rel = tree({ "/srv/a": dir(0o755), "/srv/a/l": link("../b"), "/srv/b": dir(0o700) });
      assert.equal(blockedAt(walk("/srv/a/l", rel, { searchTarget: true })), "/srv/b");
      assert.equal(
        blockedAt(walk("/srv/a/l", rel)),
        undefined,
        "a file's path: /srv/b not searched",
      );
      // A final symlink to a reachable directory passes.
      const fine = tree({ "/srv/c": link("/var/lib") });
      assert.deepEqual(walk("/srv/c", fine, { searchTarget: true }), { unjudged: [] });
    });
    it("a symlink loop is not judged (and said so), not passed silently", () => {
      const loop = tree({ "/srv/l1": link("/srv/l2"), "/srv/l2": link("l1") });
      assert.deepEqual(walk("/srv/l1/FAM", loop), {
        unjudged: [{ path: "/srv/l1", why: "symlinks" }],
      });
    });
    it("'..' goes to the parent of where the walk is: /srv/../root is /root", () => {
      assert.equal(blockedAt(walk("/srv/../root/FAM")), "/root");
      assert.equal(blockedAt(walk("/root/../srv/FAM")), "/root", "/root is searched for '..'");
    });
    it("a file in the middle of the path is left to the checks that name it", () => {
      const lookup = tree({ "/srv/f": { kind: "other", mode: 0o644, uid: 0, gid: 0 } });
      assert.deepEqual(walk("/srv/f/x/FAM", lookup), { unjudged: [] });
    });
    it("an authoritative answer overrides the mode bits where they refuse (ACLs)", () => {
      const asked: string[] = [];
      const confirm = (answer: boolean | undefined) => (d: string) => {
        asked.push(d);
        return answer;
      };
      assert.equal(blockedAt(walk("/root/x", tree(), { confirm: confirm(true) })), undefined);
      assert.deepEqual(asked, ["/root"], "asked only where the mode bits refuse");
      assert.equal(blockedAt(walk("/root/x", tree(), { confirm: confirm(false) })), "/root");
      // Cannot tell: said, and the walk goes on to the next directory.
      const lookup = tree({ "/root/y": dir(0o700) });
      const r = walk("/root/y/z", lookup, { confirm: confirm(undefined) });
      assert.deepEqual(r, {
        unjudged: [
          { path: "/root", why: "confirm" },
          { path: "/root/y", why: "confirm" },
        ],
      });
    });
    it("what fame will create is never confirmed: its mode is fame's own", () => {
      const r = walk("/srv/n/x", tree(), {
        created: () => ({ mode: 0o700, uid: 0, gid: 0 }),
        confirm: () => true,
      });
      assert.equal(blockedAt(r), "/srv/n");
    });
  });

  describe("the message", () => {
    const blocked: Blocked = { dir: "/root", info: dir(0o700), created: false };
    it("names the key, the value, the user, the blocking directory with owner and mode, and the fixes", () => {
      const m = reachMessage("dir", "/root/fame", QEMU, blocked, "root:root", "/var/lib/fame/p-s");
      assert.equal(
        m,
        'fame:dir = "/root/fame": QEMU runs as libvirt-qemu (uid 64055), which cannot reach it: /root (owner root:root, mode 0700) does not let libvirt-qemu search it. Choose a fame:dir outside /root, e.g. /var/lib/fame/p-s, or let libvirt-qemu search /root: chmod o+x /root, or setfacl -m u:libvirt-qemu:x /root',
      );
    });
    it("suggests no place inside the blocking directory or the target itself", () => {
      const var_ = { ...blocked, dir: "/var" };
      assert.match(
        reachMessage("dir", "/var/x", QEMU, var_, "root:root", "/var/lib/fame/p-s"),
        /Choose another fame:dir, or let libvirt-qemu search \/var: chmod o\+x \/var/,
      );
      const self = { ...blocked, dir: "/srv/d" };
      assert.match(
        reachMessage("imageCache", "/srv/d", QEMU, self, "u:u", "/var/cache/fame/images"),
        /Choose another fame:imageCache/,
      );
    });
    it("for a directory fame would create, names the mode and the umask fix", () => {
      const made: Blocked = { dir: "/var/lib/fame", info: dir(0o700), created: true };
      assert.equal(
        reachMessage("dir", "/var/lib/fame/s", QEMU, made, "root:root", "/var/lib/fame/p-s"),
        'fame:dir = "/var/lib/fame/s": QEMU runs as libvirt-qemu (uid 64055), which cannot reach it: fame would create /var/lib/fame with mode 0700 (0755 minus the umask), owned by root:root, which libvirt-qemu could not search. Run pulumi with umask 022, or create /var/lib/fame first with mode 0755',
      );
    });
  });

  it("targets: fame:dir and the image's directory are searched themselves, the FAM file's only on the way", () => {
    const t = reachTargets(
      { dir: "/srv/f", famPath: "/data/FAM", imageCache: "/cache" },
      "abc",
      "/var/lib/fame/p-s",
      "/var/cache/fame/images",
    );
    assert.deepEqual(
      t.map((x) => [x.key, x.value, x.path, x.searchTarget, x.chmodded, x.example]),
      [
        ["dir", "/srv/f", "/srv/f", true, ["/srv/f"], "/var/lib/fame/p-s"],
        ["famPath", "/data/FAM", "/data/FAM", false, ["/srv/f"], "/var/lib/fame/p-s/FAM"],
        ["imageCache", "/cache", "/cache/abc", true, ["/cache/abc"], "/var/cache/fame/images"],
      ],
    );
  });

  describe("host adapter", () => {
    let tmp: string;
    beforeEach(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fame-reach-"));
      fs.chmodSync(tmp, 0o755);
    });
    afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));
    const conf = (text: string) => {
      const f = path.join(tmp, "qemu.conf");
      fs.writeFileSync(f, text);
      return f;
    };
    const passwd = (name: string) =>
      fs
        .readFileSync("/etc/passwd", "utf8")
        .split("\n")
        .map((l) => l.split(":"))
        .find((f) => f[0] === name);

    it("reads user and group from qemu.conf, ignoring comments", () => {
      assert.deepEqual(parseQemuConf('#user = "root"\nuser = "qemu" # mine\n  group="kvm"\n'), {
        user: "qemu",
        group: "kvm",
      });
      assert.deepEqual(parseQemuConf('# user = "root"\n'), {});
    });

    it("reads id's output: uid, name, primary and supplementary groups", () => {
      assert.deepEqual(
        parseId(
          "uid=64055(libvirt-qemu) gid=64055(libvirt-qemu) groups=64055(libvirt-qemu),108(kvm)\n",
        ),
        { uid: 64055, name: "libvirt-qemu", gids: [64055, 108] },
      );
      assert.equal(parseId("id: 'x': no such user"), undefined);
    });

    it("reads the umask from /proc", () => {
      const status = path.join(tmp, "status");
      fs.writeFileSync(status, "Name:\tnode\nUmask:\t0027\nState:\tR\n");
      assert.equal(currentUmask(status), 0o027);
      assert.equal(currentUmask(path.join(tmp, "none")), 0o022, "not Linux: the usual umask");
    });

    it("finds qemu.conf's user and group on this host, and says when it does not exist", () => {
      const facts = systemQemuUser(conf('user = "nobody"\ngroup = "root"\n'));
      assert.ok("user" in facts);
      const entry = passwd("nobody");
      assert.equal(facts.user.name, "nobody");
      assert.equal(facts.user.uid, Number(entry?.[2]));
      assert.equal(facts.user.gids[0], 0, "qemu.conf's group first");
      assert.ok(facts.user.gids.includes(Number(entry?.[3])), "and the user's own groups");
      const missing = systemQemuUser(conf('user = "fame-no-such-user"\n'));
      assert.deepEqual(missing, {
        unknown: `${path.join(tmp, "qemu.conf")} sets user = "fame-no-such-user", which does not exist on this host`,
      });
      const badGroup = systemQemuUser(conf('user = "nobody"\ngroup = "fame-no-such-group"\n'));
      assert.match("unknown" in badGroup ? badGroup.unknown : "", /group = "fame-no-such-group"/);
    });

    function nobody(): QemuUser {
      const facts = systemQemuUser(conf('user = "nobody"\n'));
      assert.ok("user" in facts);
      return facts.user;
    }
    const targets = (p: string, searchTarget = true, chmodded: string[] = []) => [
      { key: "dir", value: p, path: p, searchTarget, chmodded, example: "/var/lib/fame/p-s" },
    ];

    it("refuses a path under a 0700 directory on the real file system, naming it", () => {
      const user = nobody();
      fs.mkdirSync(path.join(tmp, "locked"), { mode: 0o700 });
      fs.chmodSync(path.join(tmp, "locked"), 0o700);
      fs.mkdirSync(path.join(tmp, "open"), { mode: 0o755 });
      fs.chmodSync(path.join(tmp, "open"), 0o755);
      const { refusals, unjudged } = reachRefusals(targets(`${tmp}/locked/fame`), user, 0o022);
      assert.deepEqual(unjudged, []);
      assert.equal(refusals.length, 1);
      assert.match(
        refusals[0] ?? "",
        new RegExp(
          `^fame:dir = "${tmp}/locked/fame": QEMU runs as nobody .* ${tmp}/locked \\(owner \\S+, mode 0700\\) does not let nobody search it`,
        ),
      );
      assert.deepEqual(reachRefusals(targets(`${tmp}/open/fame`), user, 0o022), {
        refusals: [],
        unjudged: [],
      });
    });

    it("judges what fame would create by this process's umask, except what fame chmods", () => {
      const user = nobody();
      const deep = `${tmp}/a/b`;
      const tight = reachRefusals(targets(deep), user, 0o077);
      assert.match(
        tight.refusals[0] ?? "",
        new RegExp(`fame would create ${tmp}/a with mode 0700`),
      );
      assert.deepEqual(reachRefusals(targets(deep), user, 0o022).refusals, []);
      // fame:dir itself is chmodded 0755 after mkdir: only its missing parents count.
      assert.deepEqual(
        reachRefusals(targets(`${tmp}/a`, true, [`${tmp}/a`]), user, 0o077).refusals,
        [],
      );
    });

    it("asks the kernel for the running user (qemu:///session) where the mode bits refuse", () => {
      const me = sessionQemuUser();
      assert.ok("user" in me);
      // Pretend the mode bits see a stranger: the kernel still lets the owner in.
      const stranger = { ...me.user, uid: me.user.uid + 4242, gids: [] };
      fs.mkdirSync(path.join(tmp, "mine"), { mode: 0o700 });
      fs.chmodSync(path.join(tmp, "mine"), 0o700);
      assert.deepEqual(reachRefusals(targets(`${tmp}/mine/fame`), stranger, 0o022), {
        refusals: [],
        unjudged: [],
      });
    });
  });
});
