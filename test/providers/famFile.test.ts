import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { claimPath, groupId } from "../../lib/host/famfile";
import { famOwnerFile } from "../../lib/ownership";
import { GiB } from "../../lib/units";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../../providers/famFile";
import { type LoadedProvider, loadSerialized } from "../helpers/engine";
import { famInputs } from "../helpers/fixtures";
import { scratchDir } from "../helpers/sandbox";

function readAt(file: string, offset: number, len: number): string {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, offset);
    return buf.toString("latin1");
  } finally {
    fs.closeSync(fd);
  }
}

function writeAt(file: string, offset: number, text: string): void {
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, Buffer.from(text, "latin1"), 0, text.length, offset);
  fs.closeSync(fd);
}

describe("FamFile provider (loaded from its serialized form)", function () {
  this.timeout(60_000);
  let p: LoadedProvider<FamFileInputs, FamFileOutputs>;
  let dir: string;
  let inputs: FamFileInputs;

  before(async () => {
    dir = scratchDir("famfile");
    inputs = {
      path: path.join(dir, "sub", "FAM"),
      sizeBytes: GiB,
      group: "libvirt-qemu",
      mode: 0o660,
      deleteOnDestroy: false,
      allowShrink: false,
      users: { uri: "", domains: [], shutdownTimeoutMs: 0 },
    };
    ({ provider: p } = await loadSerialized<FamFileInputs, FamFileOutputs>(
      () => new FamFile("fam", inputs),
    ));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("creates a missing file sparse, at the size, group libvirt-qemu, mode 660", async () => {
    assert.deepEqual((await p.check({}, inputs)).failures, []);
    const { id, outs } = await p.create(inputs);
    assert.equal(id, inputs.path);
    assert.equal(outs?.createdByFame, true);
    const st = fs.statSync(inputs.path);
    assert.equal(st.size, GiB);
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.gid, await groupId("libvirt-qemu"));
    assert.ok(st.blocks * 512 < 1024 * 1024, "sparse: no data blocks allocated");
  });

  it("reads the real state and reports group drift", async () => {
    const outs = (await p.read(inputs.path, { ...inputs, createdByFame: true })).props;
    assert.deepEqual(outs, { ...inputs, createdByFame: true });
    fs.chownSync(inputs.path, 0, 0);
    fs.chmodSync(inputs.path, 0o644);
    const drifted = (await p.read(inputs.path, { ...inputs, createdByFame: true }))
      .props as FamFileOutputs;
    assert.equal(drifted.group, "gid:0");
    assert.equal(drifted.mode, 0o644);
    assert.equal((await p.diff(inputs.path, drifted, inputs)).changes, true);
    await p.update(inputs.path, drifted, inputs);
    assert.equal(fs.statSync(inputs.path).mode & 0o777, 0o660);
  });

  it("adopts an existing file of the right size with its content untouched", async () => {
    writeAt(inputs.path, 4096, "SENTINEL-1");
    const again = await p.create(inputs);
    assert.equal(again.outs?.createdByFame, false);
    assert.equal(readAt(inputs.path, 4096, 10), "SENTINEL-1");
  });

  it("a create that fails after making the file removes it, never an adopted one", async () => {
    const fresh = { ...inputs, path: path.join(dir, "fresh", "FAM"), group: "no-such-group-x" };
    await assert.rejects(p.create(fresh), /group no-such-group-x does not exist/);
    assert.equal(fs.existsSync(fresh.path), false, "the empty file it made is gone");
    // The existing file is user data: it stays, content and all.
    await assert.rejects(p.create({ ...inputs, group: "no-such-group-x" }), /does not exist/);
    assert.equal(readAt(inputs.path, 4096, 10), "SENTINEL-1");
  });

  it("diffs: no change; size and path are in-place updates (nothing ever replaces the file)", async () => {
    const olds = { ...inputs, createdByFame: true };
    assert.deepEqual(await p.diff(inputs.path, olds, inputs), {
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
    });
    const grow = await p.diff(inputs.path, olds, { ...inputs, sizeBytes: 2 * GiB });
    assert.deepEqual(grow, { changes: true, replaces: [], deleteBeforeReplace: false });
    const move = await p.diff(inputs.path, olds, { ...inputs, path: `${inputs.path}2` });
    assert.deepEqual(move, { changes: true, replaces: [], deleteBeforeReplace: false });
    const optIn = await p.diff(inputs.path, olds, { ...inputs, deleteOnDestroy: true });
    assert.deepEqual(optIn, { changes: true, replaces: [], deleteBeforeReplace: false });
  });

  it("grows in place keeping every byte, and refuses to shrink", async () => {
    const olds = { ...inputs, createdByFame: true };
    await p.update(inputs.path, olds, { ...inputs, sizeBytes: 2 * GiB });
    assert.equal(fs.statSync(inputs.path).size, 2 * GiB);
    assert.equal(readAt(inputs.path, 4096, 10), "SENTINEL-1");
    await assert.rejects(
      p.update(inputs.path, { ...olds, sizeBytes: 2 * GiB }, inputs),
      /refusing to shrink/,
    );
    assert.equal(fs.statSync(inputs.path).size, 2 * GiB);
  });

  it("check refuses, before any change, a size that would cut data or mismatch an existing file", async () => {
    const shrink = await p.check({ ...inputs, sizeBytes: 2 * GiB }, inputs);
    assert.match(shrink.failures?.[0]?.reason ?? "", /would cut 1G \(1073741824 bytes\) of data/);
    const adopt = await p.check({}, { ...inputs, sizeBytes: 4 * GiB });
    assert.match(
      adopt.failures?.[0]?.reason ?? "",
      /already exists with 2G .* set fame:famSize to 2G/,
    );
    await assert.rejects(p.create({ ...inputs, sizeBytes: 4 * GiB }), /cannot be adopted/);
    assert.equal(fs.statSync(inputs.path).size, 2 * GiB);
  });

  it("check refuses a directory, a relative path, a bad size and a missing group", async () => {
    const reasons = async (i: Partial<FamFileInputs>) =>
      ((await p.check({}, { ...inputs, ...i })).failures ?? []).map((f) => f.reason).join("; ");
    assert.match(await reasons({ path: dir }), /not a regular file/);
    assert.match(await reasons({ path: "FAM" }), /must be absolute/);
    assert.match(
      await reasons({ path: path.join(dir, "new"), sizeBytes: 3 * GiB }),
      /power of two/,
    );
    assert.match(
      await reasons({ path: path.join(dir, "new"), group: "no-such-group-x" }),
      /does not exist/,
    );
  });

  it("read of a file removed out of band reports it gone", async () => {
    fs.rmSync(inputs.path);
    assert.deepEqual(await p.read(inputs.path, { ...inputs, createdByFame: true }), {});
  });
});

describe("FamFile deletion: only a destroy asked to, only a file fame created", function () {
  this.timeout(60_000);
  let p: LoadedProvider<FamFileInputs, FamFileOutputs>;
  let dir: string;
  let n = 0;
  /** Inputs for a fresh path in the scratch dir, opted into deletion. */
  const fresh = (over: Partial<FamFileInputs> = {}): FamFileInputs =>
    famInputs(path.join(dir, `FAM-${++n}`), over);
  /** A file that exists before fame sees it, holding a sentinel. */
  const existing = (file: string) => {
    fs.writeFileSync(file, "");
    fs.truncateSync(file, GiB);
    writeAt(file, 4096, "SENTINEL-2");
  };

  before(async () => {
    dir = scratchDir("famdel");
    ({ provider: p } = await loadSerialized<FamFileInputs, FamFileOutputs>(
      () => new FamFile("fam", fresh()),
    ));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("deletes a file it created when opted in, and its claim with it", async () => {
    const i = fresh();
    const { outs } = await p.create(i);
    assert.equal(outs?.createdByFame, true);
    assert.ok(fs.existsSync(claimPath(i.path)), "the claim is recorded beside the file");
    await p.delete(i.path, outs!);
    assert.ok(!fs.existsSync(i.path));
    assert.ok(!fs.existsSync(claimPath(i.path)));
  });

  it("makes a new file's missing directory before recording its stack there", async () => {
    // A famPath whose directory does not exist yet (outside fame:dir, or before fame:dir is made).
    const i = famInputs(path.join(dir, `new-${++n}`, "deeper", "FAM"), { owner: "fame/first" });
    const { outs } = await p.create(i);
    assert.equal(outs?.createdByFame, true);
    assert.equal(fs.statSync(i.path).size, i.sizeBytes);
    assert.match(fs.readFileSync(famOwnerFile(i.path), "utf8"), /"owner":"fame\/first"/);
    await p.delete(i.path, outs!);
    assert.ok(!fs.existsSync(i.path));
  });

  it("records its stack beside the file, refuses another stack's file untouched, and releases it with the file", async () => {
    const i = fresh({ owner: "fame/first" });
    const { outs } = await p.create(i);
    const record = fs.readFileSync(famOwnerFile(i.path), "utf8");
    assert.match(record, /"owner":"fame\/first","kind":"fam"/);
    writeAt(i.path, 4096, "SENTINEL-3");
    await assert.rejects(
      p.create({ ...i, owner: "fame/second" }),
      /fame stack fame\/first owns it, not fame\/second/,
    );
    fs.chmodSync(i.path, 0o600);
    await assert.rejects(p.create({ ...i, owner: "fame/second" }), /owns it/);
    assert.equal(fs.statSync(i.path).mode & 0o777, 0o600, "not even its mode is changed");
    fs.chmodSync(i.path, 0o660);
    assert.equal(readAt(i.path, 4096, 10), "SENTINEL-3", "the other stack's file is untouched");
    assert.equal(fs.readFileSync(famOwnerFile(i.path), "utf8"), record);
    await p.delete(i.path, outs!);
    assert.ok(!fs.existsSync(i.path));
    assert.ok(!fs.existsSync(famOwnerFile(i.path)), "the record goes with the file");
    // Kept (no opt-in): the record stays with the data.
    const kept = fresh({ owner: "fame/first", deleteOnDestroy: false });
    const k = await p.create(kept);
    await p.delete(kept.path, k.outs!);
    assert.ok(fs.existsSync(famOwnerFile(kept.path)));
  });

  it("keeps a file it created without the opt-in", async () => {
    const i = fresh({ deleteOnDestroy: false });
    const { outs } = await p.create(i);
    await p.delete(i.path, outs!);
    assert.ok(fs.existsSync(i.path));
  });

  it("honours an opt-in made later in place (an update records it)", async () => {
    const i = fresh({ deleteOnDestroy: false });
    const created = (await p.create(i)).outs!;
    const { outs } = await p.update(i.path, created, { ...i, deleteOnDestroy: true });
    assert.equal(outs?.deleteOnDestroy, true);
    await p.delete(i.path, outs!);
    assert.ok(!fs.existsSync(i.path));
  });

  it("keeps a file it adopted, even with deleteOnDestroy", async () => {
    const i = fresh();
    existing(i.path);
    const { outs } = await p.create(i);
    assert.equal(outs?.createdByFame, false);
    await p.delete(i.path, outs!);
    assert.ok(fs.existsSync(i.path), "an adopted file is never deleted");
    assert.equal(readAt(i.path, 4096, 10), "SENTINEL-2");
  });

  it("a path change with deleteOnDestroy keeps the old file with its data and records the new one", async () => {
    const a = fresh();
    const olds = (await p.create(a)).outs!;
    writeAt(a.path, 4096, "SENTINEL-A");
    const b = { ...a, path: `${a.path}-moved` };
    const d = await p.diff(a.path, olds, b);
    assert.deepEqual(d.replaces, [], "a move never replaces (a replacement deletes the old file)");
    const moved = (await p.update(a.path, olds, b)).outs!;
    assert.equal(readAt(a.path, 4096, 10), "SENTINEL-A", "the old file is kept as it was");
    assert.ok(!fs.existsSync(claimPath(a.path)), "the old file is no longer claimed");
    assert.equal(moved.path, b.path);
    assert.equal(moved.createdByFame, true);
    assert.equal(fs.statSync(b.path).size, GiB);
    // Destroy afterwards: only the file it made at the new path goes.
    await p.delete(a.path, moved);
    assert.ok(!fs.existsSync(b.path));
    assert.equal(readAt(a.path, 4096, 10), "SENTINEL-A");
  });

  it("a path change onto an existing file adopts it, so destroy keeps both", async () => {
    const a = fresh();
    const olds = (await p.create(a)).outs!;
    const b = fresh();
    existing(b.path);
    const moved = (await p.update(a.path, olds, b)).outs!;
    assert.equal(moved.createdByFame, false);
    await p.delete(a.path, moved);
    assert.ok(fs.existsSync(a.path));
    assert.equal(readAt(b.path, 4096, 10), "SENTINEL-2");
  });

  it("a forced replacement keeps the file: the new resource adopts it, the old one's delete leaves it", async () => {
    const i = fresh();
    const old = (await p.create(i)).outs!;
    writeAt(i.path, 4096, "SENTINEL-R");
    // `pulumi up --replace`: create-first (diff never asks delete-first), then the old one is deleted.
    assert.equal((await p.diff(i.path, old, i)).deleteBeforeReplace, false);
    const replacement = (await p.create(i)).outs!;
    assert.equal(replacement.createdByFame, false);
    await p.delete(i.path, old);
    assert.equal(readAt(i.path, 4096, 10), "SENTINEL-R");
    assert.ok(fs.existsSync(claimPath(i.path)), "the replacement's claim stays");
  });

  it("keeps a different file later put at the same path", async () => {
    const i = fresh();
    const outs = (await p.create(i)).outs!;
    fs.rmSync(i.path);
    existing(i.path);
    await p.delete(i.path, outs);
    assert.equal(readAt(i.path, 4096, 10), "SENTINEL-2");
  });

  it("a create whose claim cannot be settled fails and removes the file it made", async () => {
    const i = fresh();
    fs.mkdirSync(path.join(claimPath(i.path), "x"), { recursive: true });
    await assert.rejects(p.create(i), /fame-claim/);
    assert.ok(!fs.existsSync(i.path), "the empty file it made is gone again");
  });

  it("keeps a file whose state predates the identity and claim (older fame)", async () => {
    const i = fresh();
    const { fileId: _f, claim: _c, ...legacy } = (await p.create(i)).outs!;
    await p.delete(i.path, legacy);
    assert.ok(fs.existsSync(i.path));
  });
});
