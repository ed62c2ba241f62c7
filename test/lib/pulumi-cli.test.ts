/**
 * scripts/pulumi-cli.sh against a fake `go` that answers like this machine's
 * Go module proxy (no optional fields: no `Origin` in `go list -m -json`), in
 * a throwaway checkout: the build must not depend on anything optional, and
 * the cache it fills must hold real files that outlive the checkout.
 */
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const ROOT = path.join(__dirname, "..", "..");
const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).dependencies[
  "@pulumi/pulumi"
] as string;

/**
 * A `go` that logs each call and, for `go build -o <out>`, writes a fake
 * `pulumi` (or language host) that prints the version. `go list -m -json`
 * prints only what the proxy here gives: Path, Version, Time.
 */
const FAKE_GO = `#!/bin/sh
echo "$*" >>"$FAKE_GO_LOG"
case "$1 $2" in
  "list -m") echo '{"Path":"github.com/pulumi/pulumi/pkg/v3","Version":"v${VERSION}","Time":"2026-11-20T10:00:00Z"}'; exit 0 ;;
  "mod init") echo "module $3" >go.mod; exit 0 ;;
esac
if [ "$1" = build ]; then
  out=""
  while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
  printf '#!/bin/sh\\necho v${VERSION}\\n' >"$out" && chmod 755 "$out"
fi
exit 0
`;

describe("scripts/pulumi-cli.sh with a fake go", function () {
  this.timeout(60_000);
  let tmp: string;
  let checkout: string;
  let cache: string;
  let goLog: string;
  let env: NodeJS.ProcessEnv;

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fame-cli-"));
    checkout = path.join(tmp, "checkout");
    cache = path.join(tmp, "cache");
    goLog = path.join(tmp, "go.log");
    fs.mkdirSync(path.join(checkout, "node_modules", "@pulumi", "pulumi"), { recursive: true });
    fs.cpSync(path.join(ROOT, "scripts"), path.join(checkout, "scripts"), { recursive: true });
    fs.copyFileSync(path.join(ROOT, "package.json"), path.join(checkout, "package.json"));
    fs.writeFileSync(
      path.join(checkout, "node_modules", "@pulumi", "pulumi", "pulumi-resource-pulumi-nodejs"),
      "#!/bin/sh\necho shim\n",
      { mode: 0o755 },
    );
    const bin = path.join(tmp, "bin");
    fs.mkdirSync(bin);
    fs.mkdirSync(path.join(tmp, "link"));
    fs.writeFileSync(path.join(bin, "go"), FAKE_GO, { mode: 0o755 });
    // No pulumi anywhere on PATH: the script must build one.
    const noPulumi = (process.env.PATH ?? "")
      .split(":")
      .filter(
        (d) => d && !fs.existsSync(path.join(d, "pulumi")) && !fs.existsSync(path.join(d, "go")),
      );
    env = {
      ...process.env,
      PATH: [bin, ...noPulumi].join(":"),
      FAME_PULUMI_CACHE: cache,
      FAME_PULUMI_LINK_DIR: path.join(tmp, "link"),
      FAKE_GO_LOG: goLog,
      TMPDIR: tmp,
    };
    delete env.FAME_PULUMI_LANGUAGE_NODEJS_SRC;
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function runScript(extra: NodeJS.ProcessEnv = {}): {
    code: number | null;
    out: string;
    err: string;
  } {
    const r = spawnSync("bash", [path.join(checkout, "scripts", "pulumi-cli.sh")], {
      env: { ...env, ...extra },
      encoding: "utf8",
    });
    return { code: r.status, out: r.stdout.trim(), err: r.stderr };
  }
  const dir = () => path.join(cache, `v${VERSION}`);
  const goCalls = () =>
    fs.existsSync(goLog) ? fs.readFileSync(goLog, "utf8").trim().split("\n") : [];

  it("builds the CLI from module versions alone and falls back to fame's language host", () => {
    const r = runScript();
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, dir());
    assert.ok(
      goCalls().some((c) => c.startsWith(`get github.com/pulumi/pulumi/pkg/v3@v${VERSION}`)),
      goCalls().join("\n"),
    );
    assert.equal(
      execFileSync(path.join(dir(), "pulumi"), ["version"], { encoding: "utf8" }).trim(),
      `v${VERSION}`,
    );
    assert.equal(
      fs.readFileSync(path.join(dir(), "pulumi-language-nodejs"), "utf8"),
      fs.readFileSync(
        path.join(ROOT, "scripts", "language-host", "pulumi-language-nodejs"),
        "utf8",
      ),
    );
    assert.match(fs.readFileSync(path.join(dir(), "language-host"), "utf8"), /^fallback/);
    assert.match(r.err, /language host: fallback/);
    assert.equal(fs.readlinkSync(path.join(tmp, "link", "pulumi")), path.join(dir(), "pulumi"));
  });

  it("leaves real files only: the cache keeps working once the checkout is deleted", () => {
    assert.equal(runScript().code, 0);
    fs.rmSync(checkout, { recursive: true, force: true });
    for (const f of ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"]) {
      const st = fs.lstatSync(path.join(dir(), f));
      assert.ok(st.isFile() && st.mode & 0o111, `${f} is an executable file, not a link`);
    }
    assert.equal(
      execFileSync(path.join(dir(), "pulumi-resource-pulumi-nodejs"), { encoding: "utf8" }).trim(),
      "shim",
    );
  });

  it("builds the official language host from its source, replacing a fallback, once", () => {
    assert.equal(runScript().code, 0);
    const src = path.join(tmp, "langsrc");
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "main.go"), "package main\n");
    fs.writeFileSync(path.join(src, "go.mod"), "module x\n");
    fs.chmodSync(src, 0o555); // read-only, as CI's copy of shared/ is
    fs.rmSync(goLog, { force: true });
    const r = runScript({ FAME_PULUMI_LANGUAGE_NODEJS_SRC: src });
    assert.equal(r.code, 0, r.err);
    const builds = goCalls().filter((c) => c.startsWith("build"));
    assert.equal(builds.length, 1, `only the language host is built: ${builds}`);
    assert.match(builds[0] ?? "", /-o \S*pulumi-language-nodejs \.$/);
    assert.match(fs.readFileSync(path.join(dir(), "language-host"), "utf8"), /^official/);
    assert.match(
      execFileSync(path.join(dir(), "pulumi-language-nodejs"), { encoding: "utf8" }),
      new RegExp(`v${VERSION}`),
    );
    fs.rmSync(goLog, { force: true });
    assert.equal(runScript({ FAME_PULUMI_LANGUAGE_NODEJS_SRC: src }).code, 0);
    assert.deepEqual(goCalls(), [], "a cached official host is not built again");
  });

  it("replaces links an earlier version left into a checkout that is gone", () => {
    fs.mkdirSync(dir(), { recursive: true });
    fs.writeFileSync(path.join(dir(), "pulumi"), `#!/bin/sh\necho v${VERSION}\n`, { mode: 0o755 });
    for (const f of ["pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"]) {
      fs.symlinkSync(path.join(tmp, "deleted-checkout", f), path.join(dir(), f));
    }
    const r = runScript();
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(goCalls(), [], "the CLI itself is not rebuilt");
    for (const f of ["pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"]) {
      assert.ok(fs.lstatSync(path.join(dir(), f)).isFile(), `${f} is a file again`);
    }
  });

  it("names a FAME_PULUMI_LANGUAGE_NODEJS_SRC that holds no source", () => {
    const r = runScript({ FAME_PULUMI_LANGUAGE_NODEJS_SRC: path.join(tmp, "nowhere") });
    assert.notEqual(r.code, 0);
    assert.match(r.err, /FAME_PULUMI_LANGUAGE_NODEJS_SRC=\S*nowhere holds no main.go/);
  });
});
