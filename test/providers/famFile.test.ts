import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { groupId } from "../../lib/host/famfile";
import { GiB } from "../../lib/units";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../../providers/famFile";
import { type LoadedProvider, loadSerialized } from "../helpers/engine";
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

  it("diffs: no change, size is an update, path is a replacement", async () => {
    const olds = { ...inputs, createdByFame: true };
    assert.deepEqual(await p.diff(inputs.path, olds, inputs), {
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
    });
    const grow = await p.diff(inputs.path, olds, { ...inputs, sizeBytes: 2 * GiB });
    assert.deepEqual(grow, { changes: true, replaces: [], deleteBeforeReplace: false });
    const move = await p.diff(inputs.path, olds, { ...inputs, path: `${inputs.path}2` });
    assert.deepEqual(move.replaces, ["path"]);
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

  it("delete keeps the file unless deleteOnDestroy was opted into", async () => {
    await p.delete(inputs.path, { ...inputs, sizeBytes: 2 * GiB, createdByFame: true });
    assert.ok(fs.existsSync(inputs.path));
    assert.equal(readAt(inputs.path, 4096, 10), "SENTINEL-1");
    await p.delete(inputs.path, { ...inputs, deleteOnDestroy: true, createdByFame: true });
    assert.ok(!fs.existsSync(inputs.path));
  });

  it("read of a file removed out of band reports it gone", async () => {
    assert.deepEqual(await p.read(inputs.path, { ...inputs, createdByFame: true }), {});
  });
});
