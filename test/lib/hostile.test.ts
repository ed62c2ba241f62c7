/**
 * Hostile config values (spaces, quotes, $(), ;, newlines, backticks, ...):
 * each is refused by validation or reaches the image build literally. The
 * image build's shell hooks are executed here exactly as mmdebstrap runs them
 * (`sh -c <hook> exec <root>`), with paths made of hostile names.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError, resolveRaw, validateConfig } from "../../lib/config";
import { aptProxyConf, type ImageInputs, imageRecipe, mmdebstrapCommand } from "../../lib/image";
import type { ConfigKey } from "../../lib/schema";
import { imageInputs } from "../helpers/fixtures";

const ctx = { project: "fame", stack: "test" };

function problems(key: ConfigKey, value: string): string[] {
  try {
    validateConfig(resolveRaw((k) => (k === key ? value : undefined), {}, ctx));
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
}

/** Injection payloads: each would run code or add configuration if it reached a shell or apt.conf. */
const PAYLOADS = [
  "a b",
  'a"b',
  "a'b",
  "a$(touch pwned)b",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, on purpose
  "a${IFS}b",
  "a`touch pwned`b",
  "a;touch pwned",
  "a&&touch pwned",
  "a|touch pwned",
  "a\\b",
  "a\nb",
  "a\rb",
  "a\tb",
  "a\0b",
  "a{b}",
  "a<b>",
  '";Acquire::x "y',
];

const URL_KEYS: ConfigKey[] = ["mirror", "proxy", "l4fame"];
const PATH_KEYS: ConfigKey[] = ["imageCache", "dir", "famPath"];

/** Distinct (key, value) pairs this file proves refused or handled literally. */
const counted = new Set<string>();

describe("hostile config values", () => {
  after(() => {
    // Reported for the bad-input figure; the assertions below are what counts.
    console.log(`      hostile values refused or handled literally: ${counted.size}`);
  });

  it("refuses every URL with whitespace, quotes, shell or apt.conf syntax (mirror, proxy, l4fame)", () => {
    for (const key of URL_KEYS) {
      for (const p of PAYLOADS) {
        for (const value of [`http://h:3128/${p}`, `http://h${p}:3128/`, `https://u:${p}@h/`]) {
          const found = problems(key, value);
          assert.equal(
            found.length,
            1,
            `${key}=${JSON.stringify(value)}: ${JSON.stringify(found)}`,
          );
          assert.match(found[0] as string, new RegExp(`^fame:${key} = `));
          assert.match(found[0] as string, /http:\/\/ or https:\/\/ URL/);
          counted.add(`${key}\0${value}`);
        }
      }
      for (const value of [
        "file:///etc/passwd",
        "ftp://h/debian",
        "javascript:alert(1)",
        "http://",
      ]) {
        assert.equal(problems(key, value).length, 1, `${key}=${value}`);
        counted.add(`${key}\0${value}`);
      }
      // and still accepts real URLs, with ports, paths, user info and query
      for (const ok of ["http://proxy.lan:3128", "https://u:p%40ss@mirror.example/debian/?x=1"]) {
        assert.deepEqual(problems(key, ok), [], ok);
      }
    }
  });

  it("never writes an unsafe proxy into apt configuration, even past validation", () => {
    assert.equal(
      aptProxyConf("http://proxy.lan:3128"),
      'Acquire::http::Proxy "http://proxy.lan:3128";\nAcquire::https::Proxy "http://proxy.lan:3128";\n',
    );
    for (const p of PAYLOADS) assert.throws(() => aptProxyConf(`http://h:1/${p}`), /proxy/);
    const inputs: ImageInputs = {
      suite: "bookworm",
      mirror: 'http://m/debian";x',
      l4fame: "",
      kernel: "k",
      sizeGbytes: 6,
      helloFabric: "",
      famScript: "",
    };
    assert.throws(() => imageRecipe(inputs), /mirror/);
    assert.throws(
      () => imageRecipe({ ...inputs, mirror: "http://m", l4fame: "http://l x" }),
      /l4fame/,
    );
  });

  it("refuses paths with control characters or double quotes (apt and libvirt's AppArmor helper cannot take them), accepts the rest (handled literally below)", () => {
    for (const key of PATH_KEYS) {
      for (const p of PAYLOADS) {
        const value = `/var/tmp/${p}/x`;
        const found = problems(key, value);
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the payloads hold control characters
        if (/[\u0000-\u001f"]/.test(p)) {
          assert.equal(found.length, 1, `${key}=${JSON.stringify(value)}`);
          assert.match(found[0] as string, p.includes('"') ? /double quote/ : /control characters/);
        } else {
          assert.deepEqual(found, [], `${key}=${JSON.stringify(value)}`);
        }
        counted.add(`${key}\0${value}`);
      }
    }
  });

  describe("the image build's hooks, run as mmdebstrap runs them", () => {
    let tmp: string;
    beforeEach(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fame-hostile-"));
    });
    afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

    /** Every file under dir (relative), to prove nothing else was created. */
    function tree(dir: string): string[] {
      return (fs.readdirSync(dir, { recursive: true }) as string[]).map(String).sort();
    }

    const recipe = imageRecipe(imageInputs());

    it("keeps every configured path out of the hook text", () => {
      const cache = "/var/tmp/d$(touch pwned)";
      const cmd = mmdebstrapCommand(recipe, `${cache}/root/`, {
        overlayDir: `${cache}/overlay`,
        hookFile: `${cache}/customize.sh`,
        aptProxyFile: `${cache}/apt-proxy.conf`,
      });
      const hooks = cmd.args.filter((a) => /^--(setup|essential|customize)-hook=/.test(a));
      assert.equal(hooks.length, 4);
      for (const h of hooks) assert.ok(!h.includes(cache), h);
      assert.equal(cmd.args.at(-2), `${cache}/root/`, "the root is one argument, as given");
      assert.equal(cmd.env.FAME_OVERLAY, `${cache}/overlay`);
      assert.equal(cmd.env.FAME_HOOK, `${cache}/customize.sh`);
    });

    for (const p of PAYLOADS.filter((x) => !/[\n\r\0]/.test(x))) {
      it(`copies and runs with an image cache named ${JSON.stringify(`my ${p}`)} literally`, () => {
        // The image cache path as the user set it, with the build's own layout below it.
        const cache = path.join(tmp, `my ${p}`);
        const work = path.join(cache, ".build-k-1");
        const overlay = path.join(work, "overlay");
        const root = path.join(work, "root");
        const hookFile = path.join(work, "customize.sh");
        const conf = path.join(overlay, "etc/initramfs-tools/conf.d/fame");
        fs.mkdirSync(path.dirname(conf), { recursive: true });
        fs.mkdirSync(root, { recursive: true });
        fs.writeFileSync(conf, "FSTYPE=ext4\n");
        // A stand-in customize hook that records the arguments it got.
        fs.writeFileSync(hookFile, 'printf "%s\\n" "$@" > "$1/hook-args"\n');
        const before = tree(tmp);

        const cmd = mmdebstrapCommand(recipe, `${root}/`, { overlayDir: overlay, hookFile });
        for (const flag of ["--essential-hook=", "--customize-hook="]) {
          const hook = cmd.args.find((a) => a.startsWith(flag))?.slice(flag.length);
          assert.ok(hook, flag);
          // mmdebstrap: sh -c <hook> exec <rootdir>
          execFileSync("sh", ["-c", hook, "exec", `${root}/`], {
            cwd: tmp,
            env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...cmd.env },
            stdio: ["ignore", "pipe", "pipe"],
          });
        }
        assert.equal(
          fs.readFileSync(path.join(root, "etc/initramfs-tools/conf.d/fame"), "utf8"),
          "FSTYPE=ext4\n",
        );
        assert.equal(
          fs.readFileSync(path.join(root, "hook-args"), "utf8"),
          `${root}/\n${overlay}\n`,
        );
        const added = tree(tmp).filter((f) => !before.includes(f));
        assert.deepEqual(
          added.map((f) => path.relative(path.relative(tmp, root), f)).sort(),
          [
            "etc",
            "etc/initramfs-tools",
            "etc/initramfs-tools/conf.d",
            "etc/initramfs-tools/conf.d/fame",
            "hook-args",
          ],
          "nothing but the copied file and the hook's record (no pwned file anywhere)",
        );
        assert.ok(!fs.existsSync(path.join(os.tmpdir(), "pwned")));
        counted.add(`imageCache-run\0${cache}`);
      });
    }
  });
});
