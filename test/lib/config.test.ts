import * as assert from "node:assert/strict";
import { hasUserinfo, redactUserinfo } from "../../lib/checks";
import {
  ConfigError,
  closestKey,
  defaultSuite,
  type RawConfig,
  resolveRaw,
  stackKeyProblems,
  validateConfig,
} from "../../lib/config";
import { CONFIG_KEYS, type ConfigKey } from "../../lib/schema";

const ctx = { project: "fame", stack: "test" };

function raw(
  overrides: Partial<Record<ConfigKey, string>> = {},
  env: Record<string, string> = {},
): RawConfig {
  return resolveRaw((k) => overrides[k], env, ctx);
}

/** Validates and returns the problems (empty when valid). */
function problems(overrides: Partial<Record<ConfigKey, string>>): string[] {
  try {
    validateConfig(raw(overrides));
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
}

function assertRefused(key: ConfigKey, value: string, rule: RegExp) {
  const p = problems({ [key]: value });
  assert.equal(p.length, 1, `expected one problem for ${key}=${value}, got ${JSON.stringify(p)}`);
  assert.ok(p[0]?.startsWith(`fame:${key} = ${JSON.stringify(value)}`), p[0]);
  assert.match(p[0] ?? "", rule);
}

function assertAccepted(key: ConfigKey, value: string) {
  assert.deepEqual(problems({ [key]: value }), [], `${key}=${value} should be accepted`);
}

describe("config resolution", () => {
  it("applies schema defaults and computes dir and famPath", () => {
    const { config } = validateConfig(raw());
    assert.equal(config.nodes, 4);
    assert.equal(config.vcpus, 2);
    assert.equal(config.vdramKiB, 786432);
    assert.equal(config.vfsGbytes, 6);
    assert.equal(config.user, "l4mdc");
    assert.equal(config.hostbase, "node");
    assert.equal(config.octets123, "192.168.42");
    assert.equal(config.libvirtUri, "qemu:///system");
    assert.equal(config.accel, "auto");
    assert.equal(config.famMode, "ivshmem");
    assert.equal(config.famSizeBytes, 16 * 2 ** 30);
    assert.equal(config.famDeleteOnDestroy, false);
    assert.equal(config.dir, "/var/lib/fame/fame-test");
    assert.equal(config.famPath, "/var/lib/fame/fame-test/FAM");
  });

  it("uses FAME_* variables when the stack leaves a key unset", () => {
    const r = raw(
      {},
      {
        FAME_DIR: "/srv/fame",
        FAME_VCPUS: "4",
        FAME_HOSTBASE: "tm",
        FAME_IVSHMSG: "/run/famez.sock",
      },
    );
    const { config } = validateConfig(r);
    assert.equal(config.dir, "/srv/fame");
    assert.equal(config.famPath, "/srv/fame/FAM");
    assert.equal(config.vcpus, 4);
    assert.equal(config.hostbase, "tm");
    assert.equal(config.famezSocket, "/run/famez.sock");
    assert.equal(r.vcpus.source, "env");
    assert.equal(r.vcpus.envVar, "FAME_VCPUS");
  });

  it("prefers FAME_PROXY over http_proxy, and an explicit stack value over both", () => {
    assert.equal(
      raw({}, { http_proxy: "http://a:1", FAME_PROXY: "http://b:2" }).proxy.value,
      "http://b:2",
    );
    assert.equal(raw({}, { http_proxy: "http://a:1" }).proxy.value, "http://a:1");
    assert.equal(
      raw({ proxy: "http://c:3" }, { FAME_PROXY: "http://b:2" }).proxy.value,
      "http://c:3",
    );
  });

  it("lets an explicitly set stack value win over FAME_* and http_proxy, even when it equals the default or is empty", () => {
    assert.deepEqual(raw({ vcpus: "2" }, { FAME_VCPUS: "8" }).vcpus, {
      value: "2",
      source: "stack",
    });
    assert.equal(raw({ vcpus: "3" }, { FAME_VCPUS: "8" }).vcpus.value, "3");
    // `pulumi config set fame:proxy ""` turns a shell's proxy off
    assert.deepEqual(
      raw({ proxy: "" }, { http_proxy: "http://a:1", FAME_PROXY: "http://b:2" }).proxy,
      {
        value: "",
        source: "stack",
      },
    );
    assert.equal(raw({ user: "l4mdc" }, { FAME_USER: "dev" }).user.value, "l4mdc");
    assert.equal(raw({ dir: "/srv/s" }, { FAME_DIR: "/srv/e" }).dir.value, "/srv/s");
    // the environment only fills keys the stack does not set
    assert.equal(raw({}, { FAME_VCPUS: "8" }).vcpus.value, "8");
  });

  it("names the environment variable in messages about its value", () => {
    try {
      validateConfig(raw({}, { FAME_VDRAM: "1024" }));
      assert.fail("should refuse");
    } catch (e) {
      assert.match(String(e), /fame:vdram = "1024" \(from FAME_VDRAM\): .*786432/);
    }
  });

  it("reports every problem at once", () => {
    const p = problems({ nodes: "0", famSize: "3G", hostbase: "Bad_Name" });
    assert.equal(p.length, 3);
  });
});

describe("config validation rules", () => {
  it("nodes: integer 1..253", () => {
    assertAccepted("nodes", "1");
    assertAccepted("nodes", "253");
    assertRefused("nodes", "0", /1 to 253/);
    assertRefused("nodes", "254", /1 to 253/);
    assertRefused("nodes", "2.5", /integer/);
    assertRefused("nodes", "three", /integer/);
  });

  it("famSize: power of two, 1G..1T, warning above 256G", () => {
    assertAccepted("famSize", "1G");
    assertAccepted("famSize", "256G");
    assertAccepted("famSize", "1024M");
    assertAccepted("famSize", "1T");
    assertRefused("famSize", "512M", /at least 1G/);
    assertRefused("famSize", "3G", /power of two/);
    assertRefused("famSize", "2T", /at most 1T/);
    assertRefused("famSize", "sixteen", /size such as 16G/);
    assertRefused("famSize", "-16G", /size such as 16G/);
    assert.match(validateConfig(raw({ famSize: "512G" })).warnings.join(), /above 256G/);
    assert.deepEqual(validateConfig(raw({ famSize: "256G", nodes: "4" })).warnings, []);
  });

  it("vcpus: 1..64", () => {
    assertAccepted("vcpus", "1");
    assertAccepted("vcpus", "64");
    assertRefused("vcpus", "0", /between 1 and 64/);
    assertRefused("vcpus", "65", /between 1 and 64/);
  });

  it("vdram: at least 786432 KiB", () => {
    assertAccepted("vdram", "786432");
    assertAccepted("vdram", "67108864");
    assertRefused("vdram", "786431", /786432/);
    assertRefused("vdram", "67108865", /786432 to 67108864/);
    assertRefused("vdram", "768M", /integer/);
  });

  it("vdram: warns when nodes x vdram exceeds host RAM", () => {
    const r = raw({ nodes: "4", vdram: "1048576" });
    assert.match(validateConfig(r, { memTotalKiB: 4 * 1048576 - 1 }).warnings.join(), /exceeds/);
    assert.deepEqual(validateConfig(r, { memTotalKiB: 4 * 1048576 }).warnings, []);
  });

  it("famPrealloc: off by default; on needs the FAM to fit in host RAM, warns beside the nodes' DRAM", () => {
    assert.equal(validateConfig(raw({})).config.famPrealloc, false);
    assert.equal(validateConfig(raw({ famPrealloc: "true" })).config.famPrealloc, true);
    assertRefused("famPrealloc", "maybe", /must be true or false/);
    const r = raw({ famPrealloc: "true", famSize: "4G", nodes: "2", vdram: "1048576" });
    assert.throws(
      () => validateConfig(r, { memTotalKiB: 4 * 1048576 }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.length === 1 &&
        /^fame:famPrealloc = "true": needs the whole FAM \(fame:famSize = 4G\) in host memory, and this host has 4194304 KiB/.test(
          e.problems[0] ?? "",
        ),
    );
    assert.match(
      validateConfig(r, { memTotalKiB: 6 * 1048576 - 1 }).warnings.join(),
      /fame:famPrealloc holds the whole FAM \(4G\) in host memory beside fame:nodes x fame:vdram = 2 x 1048576 KiB/,
    );
    assert.deepEqual(validateConfig(r, { memTotalKiB: 6 * 1048576 }).warnings, []);
    // Off: no rule about host memory for the FAM.
    const off = raw({ famSize: "4G", nodes: "2", vdram: "1048576" });
    assert.deepEqual(validateConfig(off, { memTotalKiB: 3 * 1048576 }).warnings, []);
  });

  it("vfsGbytes: 2..2048", () => {
    assertAccepted("vfsGbytes", "2");
    assertAccepted("vfsGbytes", "2048");
    assertRefused("vfsGbytes", "1", /between 2 and 2048/);
    assertRefused("vfsGbytes", "2049", /between 2 and 2048/);
  });

  it("user: a Linux user name, not root", () => {
    assertAccepted("user", "l4mdc");
    assertAccepted("user", "_dev-1");
    assertRefused("user", "root", /not be root/);
    assertRefused("user", "L4MDC", /Linux user name/);
    assertRefused("user", "a b", /Linux user name/);
    assertRefused("user", "", /Linux user name/);
  });

  it("mirror, proxy, l4fame: http(s) URLs; proxy and l4fame optional", () => {
    assertAccepted("mirror", "https://deb.example.org/debian");
    assertRefused("mirror", "", /http/);
    assertRefused("mirror", "ftp://x/debian", /http/);
    assertAccepted("proxy", "");
    assertAccepted("proxy", "http://proxy:3128");
    assertRefused("proxy", "proxy:3128", /http/);
    assertAccepted("l4fame", "");
    assertRefused("l4fame", "not a url", /http/);
  });

  it("kernel: a Debian package name", () => {
    assertAccepted("kernel", "linux-image-4.14.0-l4fame");
    assertRefused("kernel", "linux image", /Debian package/);
  });

  it("hostbase: 1..8 characters, a host name start", () => {
    assertAccepted("hostbase", "n");
    assertAccepted("hostbase", "abcdefgh");
    assertAccepted("hostbase", "tm-node");
    assertRefused("hostbase", "", /1 to 8/);
    assertRefused("hostbase", "abcdefghi", /1 to 8/);
    assertRefused("hostbase", "1node", /lower-case letter/);
    assertRefused("hostbase", "no_de", /a-z, 0-9/);
    assertRefused("hostbase", "Node", /lower-case/);
  });

  it("octets123: three octets, not loopback or multicast", () => {
    assertAccepted("octets123", "10.0.0");
    assertAccepted("octets123", "172.31.255");
    assertRefused("octets123", "192.168", /three/);
    assertRefused("octets123", "192.168.42.0", /three/);
    assertRefused("octets123", "192.168.256", /0..255/);
    assertRefused("octets123", "192.168.042", /three/);
    assertRefused("octets123", "127.0.0", /loopback/);
    assertRefused("octets123", "0.1.2", /0.0.0.0/);
    assertRefused("octets123", "224.1.2", /224/);
    assert.match(validateConfig(raw({ octets123: "8.8.8" })).warnings.join(), /not a private/);
  });

  it("libvirtUri: a local QEMU URI only (FAM, disks, seeds, AppArmor and the image cache are on this host)", () => {
    for (const ok of [
      "qemu:///system",
      "qemu:///session",
      "qemu:///system?socket=/srv/t/sock/libvirt-sock",
      "qemu+unix:///system",
      "qemu+unix:///system?socket=/run/x/libvirt-sock",
    ]) {
      assertAccepted("libvirtUri", ok);
    }
    for (const remote of [
      "qemu+ssh://root@host/system",
      "qemu+tcp://host/system",
      "qemu+tls://host.example/system",
      "qemu://host/system",
      "qemu+libssh2://u@h/system?known_hosts=/k",
      "qemu+ext://host/system",
      "qemu+unix://host/system",
    ]) {
      assertRefused(
        "libvirtUri",
        remote,
        /must be a local QEMU URI.*remote libvirt is not supported/,
      );
    }
    assertRefused("libvirtUri", "system", /must be a local QEMU URI/);
    assertRefused("libvirtUri", "xen:///system", /must be a local QEMU URI/);
    assertRefused("libvirtUri", "qemu:///embed?root=/x", /must be a local QEMU URI/);
  });

  it("famMode: ivshmem or cxl, nothing else", () => {
    assertAccepted("famMode", "ivshmem");
    assertAccepted("famMode", "cxl");
    assert.equal(validateConfig(raw({ famMode: "cxl" })).config.famMode, "cxl");
    assert.equal(validateConfig(raw({}, { FAME_FAM_MODE: "cxl" })).config.famMode, "cxl");
    assertRefused("famMode", "CXL", /must be one of ivshmem, cxl/);
    assertRefused("famMode", "pmem", /must be one of ivshmem, cxl/);
    assertRefused("famMode", "", /must be one of ivshmem, cxl/);
  });

  it("suite: bookworm or trixie, nothing else, naming the key (also from FAME_SUITE)", () => {
    assertAccepted("suite", "bookworm");
    assertAccepted("suite", "trixie");
    assert.equal(validateConfig(raw({ suite: "bookworm" })).config.suite, "bookworm");
    assert.equal(validateConfig(raw({}, { FAME_SUITE: "bookworm" })).config.suite, "bookworm");
    for (const bad of ["Trixie", "bullseye", "sid", "stable", "13", ""]) {
      assertRefused("suite", bad, /must be one of bookworm, trixie/);
    }
    assert.throws(
      () => validateConfig(raw({}, { FAME_SUITE: "forky" })),
      /fame:suite = "forky" \(from FAME_SUITE\): must be one of bookworm, trixie/,
    );
  });

  it("suite unset: a new stack gets trixie; a stack keeps its recorded release; a record from before the key means bookworm", () => {
    const suite = (history?: Parameters<typeof validateConfig>[3]) =>
      validateConfig(raw(), {}, undefined, history);
    assert.equal(suite().config.suite, "trixie", "no history given: a new stack");
    assert.equal(suite({ record: "none" }).config.suite, "trixie");
    assert.match(suite({ record: "none" }).suiteReason, /new stack/);
    const old = suite({ record: "applied" });
    assert.equal(old.config.suite, "bookworm", "an applied.json without suite predates the key");
    assert.match(old.suiteReason, /applied before fame had the key.*keep bookworm/);
    assert.match(old.suiteReason, /set fame:suite trixie to upgrade/);
    assert.equal(suite({ record: "applied", suite: "trixie" }).config.suite, "trixie");
    assert.equal(suite({ record: "applied", suite: "bookworm" }).config.suite, "bookworm");
    assert.equal(suite({ record: "unreadable" }).config.suite, "bookworm");
    assert.match(suite({ record: "unreadable" }).suiteReason, /set fame:suite/);
    // A set value (stack or FAME_SUITE) wins over every history.
    for (const history of [{ record: "none" }, { record: "applied" }] as const) {
      assert.equal(
        validateConfig(raw({ suite: "trixie" }), {}, undefined, history).config.suite,
        "trixie",
      );
      assert.equal(
        validateConfig(raw({}, { FAME_SUITE: "bookworm" }), {}, undefined, history).config.suite,
        "bookworm",
      );
    }
    assert.equal(validateConfig(raw({ suite: "bookworm" })).suiteReason, "fame:suite");
    assert.deepEqual(defaultSuite({ record: "applied", suite: "bookworm" }).suite, "bookworm");
  });

  it("accel: auto, kvm or tcg", () => {
    assertAccepted("accel", "kvm");
    assertAccepted("accel", "tcg");
    assertRefused("accel", "hvf", /auto, kvm, tcg/);
  });

  it("paths: absolute, one line, files not ending in /", () => {
    assertRefused("dir", "FAME", /absolute/);
    assertRefused("famPath", "./FAM", /absolute/);
    assertRefused("famPath", "/srv/fame/", /not end with/);
    assertRefused("famPath", "/srv/fa\nm", /newline/);
    assertAccepted("famPath", "/srv/fame,1/FAM");
    assertAccepted("famezSocket", "");
    assertRefused("famezSocket", "famez.sock", /absolute/);
  });

  it("paths: no double quote or control character, which the build's tools cannot take; a backslash or space is fine", () => {
    // mmdebstrap: "apt cannot handle paths with double quotes" (after the build has started).
    assertRefused(
      "imageCache",
      '/var/cache/"fame"',
      /^fame:imageCache = "\/var\/cache\/\\"fame\\"": must not contain a double quote: apt.*mmdebstrap.*AppArmor/,
    );
    for (const key of [
      "dir",
      "famPath",
      "imageCache",
      "famezSocket",
      "kernelPath",
      "initrdPath",
    ] as const) {
      const extra =
        key === "kernelPath"
          ? { initrdPath: "/i" }
          : key === "initrdPath"
            ? { kernelPath: "/k" }
            : {};
      for (const value of [
        '/srv/a"b',
        "/srv/a\tb",
        "/srv/a\u0001b",
        "/srv/a\u007fb",
        "/srv/a\nb",
      ]) {
        const p = problems({ ...extra, [key]: value });
        assert.equal(p.length, 1, `${key}=${JSON.stringify(value)}: ${JSON.stringify(p)}`);
        assert.ok(
          p[0]?.startsWith(`fame:${key} = ${JSON.stringify(value)}: must not contain`),
          p[0],
        );
        assert.match(p[0] ?? "", value.includes('"') ? /double quote/ : /control characters/);
      }
      assert.deepEqual(problems({ ...extra, [key]: "/srv/a\\b c/x" }), [], key);
    }
  });

  it("never shows a URL's credentials in a message", () => {
    const p = problems({ proxy: "http://bob:s3cret@proxy.lan:3128/a b" });
    assert.equal(p.length, 1);
    assert.match(p[0] ?? "", /^fame:proxy = "http:\/\/\*\*\*@proxy.lan:3128\/a b": must be/);
    assert.doesNotMatch(p[0] ?? "", /bob|s3cret/);
    // Userinfo ends at the last "@" before the path; an "@" in the path is not userinfo.
    assert.equal(redactUserinfo("http://u@x:p@h:1/a@b"), "http://***@h:1/a@b");
    assert.equal(redactUserinfo("https://h/a@b"), "https://h/a@b");
    assert.equal(hasUserinfo("http://token@h"), true);
    assert.equal(hasUserinfo("http://h:3128"), false);
    // Only http(s) URLs: an ssh user name is not a credential.
    assert.equal(redactUserinfo("qemu+ssh://root@host/system"), "qemu+ssh://root@host/system");
  });

  it("kernelPath and initrdPath: together or not at all", () => {
    assert.deepEqual(problems({ kernelPath: "/k", initrdPath: "/i" }), []);
    assertRefused("kernelPath", "k", /absolute/);
    const p = problems({ kernelPath: "/k" });
    assert.equal(p.length, 1);
    assert.match(
      p[0] ?? "",
      /fame:initrdPath = "": kernelPath and initrdPath must be set together/,
    );
  });

  it("booleans", () => {
    assert.equal(
      validateConfig(raw({ famDeleteOnDestroy: "true" })).config.famDeleteOnDestroy,
      true,
    );
    assertRefused("famDeleteOnDestroy", "maybe", /true or false/);
    assertRefused("verbose", "2", /true or false/);
  });
});

describe("config keys of the stack", () => {
  const keys = (values: Record<string, string>, secretKeys: string[] = []) =>
    stackKeyProblems({ values, secretKeys });

  it("accepts every key of the schema, the password as a secret, and an empty config", () => {
    const values = Object.fromEntries(CONFIG_KEYS.map((k) => [`fame:${k}`, "x"]));
    assert.deepEqual(keys(values, ["fame:password"]), []);
    assert.deepEqual(keys({}), []);
  });

  it("refuses an unknown fame: key, naming it and its value and suggesting the closest key", () => {
    const p = keys({ "fame:famsize": "64G", "fame:nodes": "2" });
    assert.equal(p.length, 1, JSON.stringify(p));
    assert.match(p[0] ?? "", /^fame:famsize = "64G": unknown key, .*did you mean fame:famSize\?/);
    assert.match(p[0] ?? "", /pulumi config rm fame:famsize/);
    // One problem per key, all at once.
    assert.equal(keys({ "fame:nodez": "2", "fame:vcpu": "2" }).length, 2);
  });

  it("suggests by case, small typos, swapped letters, extra words and FAME_* variable names", () => {
    const cases: [string, string][] = [
      ["famsize", "famSize"],
      ["FAMSIZE", "famSize"],
      ["nodez", "nodes"],
      ["famPaht", "famPath"],
      ["vdramKiB", "vdram"],
      ["librarian_port", "librarianPort"],
      ["FAME_NODES", "nodes"],
      ["FAME_FAM", "famPath"],
      ["http_proxy", "proxy"],
    ];
    for (const [typo, key] of cases) assert.equal(closestKey(typo), key, typo);
    // Nothing close: no guess.
    assert.equal(closestKey("region"), undefined);
    const p = keys({ "fame:region": "eu" });
    assert.equal(p.length, 1);
    assert.doesNotMatch(p[0] ?? "", /did you mean/);
  });

  it("ignores keys of other namespaces (Pulumi's, providers')", () => {
    assert.deepEqual(
      keys(
        { "pulumi:disable-default-providers": "[]", "aws:region": "eu-west-1", "famex:x": "1" },
        ["aws:secretKey"],
      ),
      [],
    );
  });

  it("reads the language host's older key spelling (fame:config:<key>) as the same key", () => {
    assert.deepEqual(keys({ "fame:config:nodes": "2" }), []);
    assert.match(keys({ "fame:config:famsize": "2G" })[0] ?? "", /^fame:famsize = "2G"/);
  });

  it("accepts fame:proxy (it may hold credentials) both as a secret and plain", () => {
    assert.deepEqual(keys({ "fame:proxy": "http://u:p@proxy:3128" }, ["fame:proxy"]), []);
    assert.deepEqual(keys({ "fame:proxy": "http://proxy:3128" }), []);
  });

  it("refuses a non-secret key set with --secret, without repeating its value", () => {
    const p = keys({ "fame:nodes": "4", "fame:user": "dev-secret-name" }, [
      "fame:nodes",
      "fame:user",
    ]);
    assert.equal(p.length, 2);
    assert.match(
      p[0] ?? "",
      /^fame:nodes is set as a secret, but fame writes it to plain files, resource inputs and outputs.*without --secret \(`pulumi config set fame:nodes <value>`\)/,
    );
    assert.doesNotMatch(JSON.stringify(p), /dev-secret-name/);
    // An unknown key set as a secret: named, its value not shown.
    const u = keys({ "fame:pasword": "hunter2" }, ["fame:pasword"]);
    assert.match(
      u[0] ?? "",
      /^fame:pasword \(a secret\): unknown key.*did you mean fame:password\?/,
    );
    assert.doesNotMatch(u[0] ?? "", /hunter2/);
  });

  it("refuses the password in plain text, without repeating it", () => {
    const p = keys({ "fame:password": "hunter2" });
    assert.equal(p.length, 1);
    assert.match(
      p[0] ?? "",
      /^fame:password is stored in plain text .*pulumi config set --secret fame:password <value>/,
    );
    assert.doesNotMatch(p[0] ?? "", /hunter2/);
  });

  it("validateConfig reports key problems first, in one error with the value problems", () => {
    const r = raw({ nodes: "0" });
    assert.throws(
      () =>
        validateConfig(
          r,
          {},
          { values: { "fame:nodes": "0", "fame:famsize": "64G" }, secretKeys: [] },
        ),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.length === 2 &&
        /^fame:famsize = "64G": unknown key/.test(e.problems[0] ?? "") &&
        /^fame:nodes = "0"/.test(e.problems[1] ?? ""),
    );
    assert.throws(
      () => validateConfig(raw(), {}, { values: { "fame:famsize": "64G" }, secretKeys: [] }),
      /fame:famsize/,
    );
  });
});
