/**
 * The CLI cache is self-contained: scripts/pulumi-cli.sh run from one checkout
 * leaves real files in the cache, so deleting that checkout (a CI clone, say)
 * leaves `pulumi preview` working from every other checkout.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  languageHostOf,
  officialHostSourceAvailable,
  pulumiEnv,
  usePulumiCli,
} from "../helpers/pulumi";
import { ROOT, sandboxUri, scratchDir, testImageCache } from "../helpers/sandbox";

const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).dependencies[
  "@pulumi/pulumi"
] as string;

describe("e2e: the Pulumi CLI cache outlives the checkout that filled it", function () {
  this.timeout(40 * 60_000);
  let work = "";
  const stackName = `cache-${process.pid}`;

  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(path.join(ROOT, `Pulumi.${stackName}.yaml`), { force: true });
  });

  it("fills the cache from checkout A, deletes A, and previews from this checkout", () => {
    const built = usePulumiCli();
    // The real-CLI tier runs the official host wherever its source is (always in CI).
    const host = languageHostOf(built);
    console.log(`      language host: ${host}`);
    assert.match(host, officialHostSourceAvailable() ? /^official/ : /^fallback/);
    work = scratchDir("cli-cache");
    // Checkout A: the script and what it reads, node_modules shared with this checkout.
    const a = path.join(work, "checkout-a");
    fs.mkdirSync(a);
    fs.cpSync(path.join(ROOT, "scripts"), path.join(a, "scripts"), { recursive: true });
    fs.copyFileSync(path.join(ROOT, "package.json"), path.join(a, "package.json"));
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(a, "node_modules"));
    // A cache of its own, seeded with the binaries already built (no second Go build).
    const cache = path.join(work, "cache");
    const dir = path.join(cache, `v${VERSION}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(path.join(built, "pulumi"), path.join(dir, "pulumi"));
    fs.chmodSync(path.join(dir, "pulumi"), 0o755);
    // No other pulumi on PATH (the script would use one of the same version as it is).
    const pathDirs = (process.env.PATH ?? "")
      .split(":")
      .filter((d) => d && !fs.existsSync(path.join(d, "pulumi")));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PATH: pathDirs.join(":"),
      FAME_PULUMI_CACHE: cache,
      FAME_PULUMI_LINK_DIR: path.join(work, "no-link"),
    };
    for (const f of ["pulumi-language-nodejs", "language-host"]) {
      if (fs.existsSync(path.join(built, f)))
        fs.copyFileSync(path.join(built, f), path.join(dir, f));
    }
    const out = execFileSync("bash", [path.join(a, "scripts", "pulumi-cli.sh")], {
      env,
      encoding: "utf8",
    }).trim();
    assert.equal(out, dir);
    fs.rmSync(a, { recursive: true, force: true });

    for (const f of ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"]) {
      const st = fs.lstatSync(path.join(dir, f));
      assert.ok(st.isFile(), `${f} in the cache is a real file, not a link`);
      assert.ok(st.mode & 0o111, `${f} is executable`);
    }

    // This checkout, with only the cache's pulumi on PATH.
    const cli = {
      ...process.env,
      ...pulumiEnv(work),
      PATH: [dir, ...pathDirs].join(":"),
      PULUMI_STACK: stackName,
      FAME_LIBVIRT_URI: sandboxUri(),
      FAME_DIR: path.join(work, "fame"),
      FAME_NODES: "1",
      FAME_HOSTBASE: "cc",
      FAME_OCTETS123: "10.213.61",
      FAME_IMAGE_CACHE: testImageCache(),
    };
    const pulumi = (...args: string[]) =>
      execFileSync(path.join(dir, "pulumi"), args, {
        cwd: ROOT,
        env: cli,
        encoding: "utf8",
        stdio: "pipe",
      });
    pulumi("stack", "init", stackName);
    const preview = pulumi("preview", "--non-interactive", "--diff");
    assert.match(preview, /\+ \d+ to create/, preview);
    pulumi("stack", "rm", "--yes", "--force", stackName);
  });
});
