import * as assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { apparmorBlock, apparmorPath, rulesIn, withBlock } from "../../lib/apparmor";
import {
  AppArmorAccess,
  type AppArmorInputs,
  type AppArmorOutputs,
} from "../../providers/apparmor";
import { loadSerialized } from "../helpers/engine";
import { scratchDir } from "../helpers/sandbox";

/** Parses profile text with the real AppArmor parser, without loading it into a kernel. */
function parses(dir: string, block: string): void {
  const inc = path.join(dir, "block");
  fs.writeFileSync(inc, `${block}\n`);
  const profile = path.join(dir, "profile");
  fs.writeFileSync(profile, `abi <abi/3.0>,\nprofile fame-test {\n  #include "${inc}"\n}\n`);
  execFileSync("apparmor_parser", ["-Q", "-K", "-I", "/etc/apparmor.d", profile], {
    stdio: "pipe",
  });
}

describe("AppArmor rules for the FAM file", () => {
  let dir: string;
  before(() => {
    dir = scratchDir("apparmor");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const rules = [
    { path: "/var/lib/fame/dev/FAM", perms: "rw" },
    { path: '/srv/odd dir,*?[x]{y}/F"AM', perms: "rw" },
  ];

  it("allows exactly the FAM path (globbing characters escaped) and apparmor_parser accepts it", () => {
    assert.equal(apparmorPath("/a*b?c"), '"/a\\*b\\?c"');
    const block = apparmorBlock("fame/dev", rules);
    assert.match(block, /^# BEGIN fame fame\/dev/);
    assert.match(block, /^"\/var\/lib\/fame\/dev\/FAM" rw,$/m);
    parses(dir, block);
  });

  it("replaces only its own stack's block, keeping other content", () => {
    const others = "# site rule\n/opt/x r,\n";
    const one = withBlock(others, "fame/a", rules);
    const two = withBlock(one, "fame/b", [{ path: "/b/FAM", perms: "rw" }]);
    assert.deepEqual(rulesIn(two, "fame/a"), rules);
    assert.deepEqual(rulesIn(two, "fame/b"), [{ path: "/b/FAM", perms: "rw" }]);
    const changed = withBlock(two, "fame/a", [{ path: "/a2/FAM", perms: "rw" }]);
    assert.deepEqual(rulesIn(changed, "fame/a"), [{ path: "/a2/FAM", perms: "rw" }]);
    assert.equal(withBlock(withBlock(changed, "fame/a", []), "fame/b", []), others);
  });

  it("provider writes, reads, updates and removes its block (loaded from its serialized form)", async () => {
    const file = path.join(dir, "apparmor.d", "local", "abstractions", "libvirt-qemu");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, "# site\n");
    const inputs: AppArmorInputs = { file, owner: "fame/dev", rules };
    const { provider: p } = await loadSerialized<AppArmorInputs, AppArmorOutputs>(
      () => new AppArmorAccess("a", inputs),
    );
    assert.deepEqual((await p.check({}, inputs)).failures, []);
    assert.equal(
      (await p.check({}, { ...inputs, rules: [{ path: "FAM", perms: "rw" }] })).failures?.length,
      1,
    );
    const { id, outs } = await p.create(inputs);
    assert.equal(outs?.written, true);
    parses(dir, fs.readFileSync(file, "utf8"));
    assert.deepEqual((await p.read(id, outs)).props?.rules, rules);
    fs.writeFileSync(file, "# site\n");
    const drifted = (await p.read(id, outs)).props!;
    assert.equal((await p.diff(id, drifted, inputs)).changes, true);
    await p.update(id, drifted, inputs);
    assert.deepEqual(rulesIn(fs.readFileSync(file, "utf8"), "fame/dev"), rules);
    await p.delete(id, outs!);
    assert.equal(fs.readFileSync(file, "utf8"), "# site\n");
  });

  it("loses no block when writers race: two providers with 15 stacks each, at once", async () => {
    const file = path.join(dir, "race", "apparmor.d", "local", "abstractions", "libvirt-qemu");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, "# site\n");
    const load = async () =>
      (
        await loadSerialized<AppArmorInputs, AppArmorOutputs>(
          () => new AppArmorAccess("a", { file, owner: "x/y", rules }),
        )
      ).provider;
    const [p1, p2] = [await load(), await load()];
    const owners = Array.from({ length: 30 }, (_, i) => `fame/s${i}`);
    const rule = (o: string) => [{ path: `/srv/${o}/FAM`, perms: "rw" }];
    await Promise.all(
      owners.map((o, i) => (i % 2 ? p1 : p2).create({ file, owner: o, rules: rule(o) })),
    );
    const text = fs.readFileSync(file, "utf8");
    for (const o of owners) assert.deepEqual(rulesIn(text, o), rule(o), `block of ${o}`);
    assert.match(text, /^# site$/m);
    // half of them go again, concurrently: only their blocks go
    await Promise.all(
      owners
        .filter((_, i) => i % 2 === 0)
        .map((o, i) =>
          (i % 2 ? p1 : p2).delete(`${file}#${o}`, {
            file,
            owner: o,
            rules: rule(o),
            written: true,
            enforced: false,
          }),
        ),
    );
    const after = fs.readFileSync(file, "utf8");
    for (const [i, o] of owners.entries()) {
      assert.deepEqual(
        rulesIn(after, o),
        i % 2 === 0 ? [] : rule(o),
        `block of ${o} after deletes`,
      );
    }
    // no lock or temp file left behind
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ["libvirt-qemu"]);
  });

  it("loses no block when two processes write at once", function () {
    this.timeout(120_000);
    const file = path.join(dir, "procs", "apparmor.d", "local", "abstractions", "libvirt-qemu");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const script = `
      const { appArmorProvider } = require(${JSON.stringify(path.join(__dirname, "..", "..", "providers", "apparmor"))});
      const [file, tag] = process.argv.slice(1);
      Promise.all(Array.from({ length: 20 }, (_, i) =>
        appArmorProvider.create({ file, owner: "fame/" + tag + i, rules: [{ path: "/srv/" + tag + i, perms: "rw" }] }),
      )).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
    const children = ["a", "b"].map((tag) =>
      spawn(process.execPath, ["-r", "ts-node/register/transpile-only", "-e", script, file, tag], {
        stdio: ["ignore", "inherit", "inherit"],
      }),
    );
    return Promise.all(
      children.map(
        (c) =>
          new Promise<void>((ok, fail) =>
            c.on("exit", (code) => (code === 0 ? ok() : fail(new Error(`writer exited ${code}`)))),
          ),
      ),
    ).then(() => {
      const text = fs.readFileSync(file, "utf8");
      for (const tag of ["a", "b"]) {
        for (let i = 0; i < 20; i++) {
          assert.deepEqual(rulesIn(text, `fame/${tag}${i}`), [
            { path: `/srv/${tag}${i}`, perms: "rw" },
          ]);
        }
      }
      assert.deepEqual(fs.readdirSync(path.dirname(file)), ["libvirt-qemu"]);
    });
  });

  it("writes nothing where AppArmor is not configured", async () => {
    const file = path.join(dir, "none", "apparmor.d", "local", "abstractions", "libvirt-qemu");
    const inputs: AppArmorInputs = { file, owner: "fame/dev", rules };
    const { provider: p } = await loadSerialized<AppArmorInputs, AppArmorOutputs>(
      () => new AppArmorAccess("a", inputs),
    );
    assert.equal((await p.create(inputs)).outs?.written, false);
    assert.ok(!fs.existsSync(file));
  });
});
