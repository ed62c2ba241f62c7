import * as assert from "node:assert/strict";
import { nodeDiskFile } from "../../components/fameNode";
import {
  containsUnknown,
  defineProvider,
  diffBySpec,
  knownPart,
  UNKNOWN,
  withUndo,
} from "../../providers/contract";
import { famFileProvider } from "../../providers/famFile";
import { nodeDiskProvider } from "../../providers/nodeDisk";

const noop = {
  create: async () => ({ id: "x", outs: {} }),
  read: async () => ({}),
  delete: async () => {},
};

describe("provider contract", () => {
  it("finds unknowns at any depth and drops the properties that hold them", () => {
    assert.equal(containsUnknown({ a: [{ b: UNKNOWN }] }), true);
    assert.equal(containsUnknown({ a: [{ b: "known" }] }), false);
    assert.deepEqual(knownPart({ a: 1, b: UNKNOWN, c: { d: [UNKNOWN] } }), { a: 1 });
  });

  it("refuses to define a provider with in-place keys but no update", () => {
    assert.throws(
      () => defineProvider({ keys: ["path", "mode"], replaceKeys: ["path"], ...noop }),
      /in-place keys \(mode\) must define update/,
    );
    assert.throws(
      () => defineProvider({ keys: ["a"], replaceKeys: ["a", "b"], ...noop }),
      /b must be one of the diffed keys/,
    );
    assert.doesNotThrow(() => defineProvider({ keys: ["path"], replaceKeys: ["path"], ...noop }));
  });

  it("an unknown input is a change; a replacement deletes first only when a unique input is kept", () => {
    const spec = {
      keys: ["path", "base", "mode"],
      replaceKeys: ["path", "base"],
      uniqueKeys: ["path"],
    };
    const olds = { path: "/a", base: "/b1", mode: 1 };
    assert.deepEqual(diffBySpec(spec, olds, { ...olds }), {
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
      changed: [],
    });
    const inPlace = diffBySpec(spec, olds, { ...olds, mode: UNKNOWN });
    assert.equal(inPlace.changes, true);
    assert.deepEqual(inPlace.replaces, []);
    // Same path, new base: both cannot exist, so the old goes first.
    const samePath = diffBySpec(spec, olds, { ...olds, base: "/b2" });
    assert.deepEqual([samePath.replaces, samePath.deleteBeforeReplace], [["base"], true]);
    // New path: the new one is made beside the old one first.
    const newPath = diffBySpec(spec, olds, { ...olds, path: "/c", base: "/b2" });
    assert.deepEqual([newPath.replaces, newPath.deleteBeforeReplace], [["path", "base"], false]);
    // Path not yet known: assume it may be kept.
    const unknownPath = diffBySpec(spec, olds, { ...olds, path: UNKNOWN });
    assert.deepEqual([unknownPath.replaces, unknownPath.deleteBeforeReplace], [["path"], true]);
  });

  it("compares projected views (e.g. a hash) and repairs recorded drift", () => {
    const spec = {
      keys: ["path", "hash"],
      replaceKeys: ["path"],
      project: (n: { path: string; files: string }) => ({ path: n.path, hash: `h(${n.files})` }),
    };
    const olds: { path: string; hash: string; stopped?: boolean } = { path: "/p", hash: "h(x)" };
    assert.equal(diffBySpec(spec, olds, { path: "/p", files: "x" }).changes, false);
    assert.deepEqual(diffBySpec(spec, olds, { path: "/p", files: "y" }).changed, ["hash"]);
    // Files unknown: the hash is unknown too.
    assert.deepEqual(diffBySpec(spec, olds, { path: "/p", files: UNKNOWN }).changed, ["hash"]);
    assert.equal(diffBySpec(spec, olds, { path: "/p", files: "x" }, true).changes, true);
  });

  it("diff asks the host for drift only when the inputs show none, and fails naming the resource when it cannot ask", async () => {
    let asked = 0;
    let answer: boolean | Error = true;
    const p = defineProvider<{ a: number }, { a: number }>({
      keys: ["a"],
      replaceKeys: ["a"],
      needsRepair: async () => {
        asked++;
        if (answer instanceof Error) throw answer;
        return answer;
      },
      create: async () => ({ id: "x", outs: { a: 1 } }),
      read: async () => ({}),
      delete: async () => {},
    });
    assert.equal((await p.diff!("r1", { a: 1 }, { a: 1 })).changes, true);
    answer = false;
    assert.equal((await p.diff!("r1", { a: 1 }, { a: 1 })).changes, false);
    assert.equal(asked, 2);
    assert.deepEqual((await p.diff!("r1", { a: 1 }, { a: 2 })).replaces, ["a"]);
    assert.equal(asked, 2, "a change in the inputs needs no look at the host");
    answer = new Error("virsh -c qemu:///system net-info br: failed to connect to the hypervisor");
    await assert.rejects(
      p.diff!("r1", { a: 1 }, { a: 1 }),
      /^Error: cannot check r1 for changes made outside fame \(every preview and up compare it with the host\): virsh .*failed to connect/,
    );
  });

  it("a node disk replaced under the same path is deleted first (new image cache, same key)", async () => {
    const olds = {
      path: "/d/node01.qcow2",
      backingFile: "/c1/k/golden.qcow2",
      sizeBytes: 1,
      allocatedBytes: 0,
      serial: "s",
    };
    const d = await nodeDiskProvider.diff?.("id", olds, {
      path: olds.path,
      backingFile: "/c2/k/golden.qcow2",
      sizeBytes: 1,
    });
    assert.deepEqual([d?.replaces, d?.deleteBeforeReplace], [["backingFile"], true]);
  });

  it("check takes what the spec keeps from the recorded inputs, judged on known inputs only", async () => {
    const p = defineProvider<{ path: string; n: number }, object>({
      keys: ["path", "n"],
      replaceKeys: ["path", "n"],
      keep: (olds, news) =>
        olds.path !== undefined && news.n !== undefined && olds.n === news.n
          ? { path: olds.path }
          : {},
      ...noop,
    });
    const olds = { path: "/d/a", n: 1 };
    assert.deepEqual((await p.check!(olds, { path: "/d/b", n: 1 })).inputs, olds);
    assert.deepEqual((await p.check!(olds, { path: "/d/b", n: 2 })).inputs, { path: "/d/b", n: 2 });
    // Not yet known: nothing is kept, the diff sees the unknown as a change.
    assert.deepEqual(
      (await p.check!(olds, { path: "/d/b", n: UNKNOWN as unknown as number })).inputs,
      {
        path: "/d/b",
        n: UNKNOWN,
      },
    );
    // A new object (or the engine's second check of a replacement) has no recorded inputs.
    assert.deepEqual((await p.check!(undefined as never, { path: "/d/b", n: 1 })).inputs, {
      path: "/d/b",
      n: 1,
    });
  });

  it("a renamed node keeps its disk file (no change at all); a new image, size or directory does not", async () => {
    const olds = { path: "/d/node01-aaa.qcow2", backingFile: "/c/k/golden.qcow2", sizeBytes: 6 };
    const renamed = { ...olds, path: "/d/lab01-aaa.qcow2" };
    const kept = (await nodeDiskProvider.check!(olds, renamed)).inputs ?? renamed;
    assert.equal(kept.path, olds.path);
    const d = await nodeDiskProvider.diff!("id", { ...olds, allocatedBytes: 0, serial: "s" }, kept);
    assert.equal(d.changes, false);
    for (const other of [
      { ...renamed, backingFile: "/c/k2/golden.qcow2" },
      { ...renamed, sizeBytes: 7 },
      { ...olds, path: "/e/node01-aaa.qcow2" },
    ]) {
      assert.equal((await nodeDiskProvider.check!(olds, other)).inputs?.path, other.path);
    }
  });

  it("a node's CXL label file keeps its path across a rename (keepPath); the FAM file moves", async () => {
    const lsa = {
      path: "/nonexistent-fame/node01.lsa",
      sizeBytes: 131072,
      group: "root",
      mode: 0o660,
      deleteOnDestroy: true,
      allowShrink: false,
      users: { uri: "", domains: [], shutdownTimeoutMs: 0 },
      keepPath: true,
    };
    const renamed = { ...lsa, path: "/nonexistent-fame/lab01.lsa" };
    assert.equal((await famFileProvider.check!(lsa, renamed)).inputs?.path, lsa.path);
    const fam = { ...renamed, keepPath: false };
    assert.equal((await famFileProvider.check!(lsa, fam)).inputs?.path, fam.path);
    const elsewhere = { ...renamed, path: "/nonexistent-fame2/lab01.lsa" };
    assert.equal((await famFileProvider.check!(lsa, elsewhere)).inputs?.path, elsewhere.path);
  });

  it("undoes a failed create's steps newest first and rethrows its own error", async () => {
    const ran: string[] = [];
    const original = Object.assign(new Error("virsh start fam01 failed"), { kind: "other" });
    const caught = await withUndo(async (undo) => {
      undo.push("undefine domain fam01", async () => void ran.push("undefine"));
      undo.push("remove disk", async () => void ran.push("rm"));
      throw original;
    }).catch((e: unknown) => e);
    assert.deepEqual(ran, ["rm", "undefine"]);
    // The very error (its kind, stderr) with its message untouched.
    assert.equal(caught, original);
    assert.equal(original.message, "virsh start fam01 failed");
    // A create that succeeds keeps what it made.
    ran.length = 0;
    const made = await withUndo(async (undo) => {
      undo.push("undefine domain fam01", async () => void ran.push("undefine"));
      return "fam01";
    });
    assert.deepEqual([made, ran], ["fam01", []]);
  });

  it("a failing undo step neither hides the create's error nor stops the other steps", async () => {
    const ran: string[] = [];
    await assert.rejects(
      withUndo(async (undo) => {
        undo.push("undefine domain fam01", async () => void ran.push("undefine"));
        undo.push("destroy network br_fam", async () => {
          throw new Error("libvirtd is gone");
        });
        throw new Error("net-start br_fam failed");
      }),
      {
        message:
          "net-start br_fam failed; undoing the failed create also failed, remove by hand: destroy network br_fam: libvirtd is gone",
      },
    );
    assert.deepEqual(ran, ["undefine"]);
    await assert.rejects(
      withUndo(async (undo) => {
        undo.push("step", async () => {
          throw "plain";
        });
        throw "not an Error";
      }),
      {
        message: "not an Error; undoing the failed create also failed, remove by hand: step: plain",
      },
    );
  });

  it("every provider's create gets an undo stack that runs when it throws", async () => {
    const made = new Set<string>();
    const p = defineProvider<{ name: string }, { name: string }>({
      keys: ["name"],
      replaceKeys: ["name"],
      async create(inputs, undo) {
        made.add(inputs.name);
        undo.push(`remove ${inputs.name}`, async () => void made.delete(inputs.name));
        if (inputs.name === "bad") throw new Error("start bad failed");
        return { id: inputs.name, outs: inputs };
      },
      read: async () => ({}),
      delete: async () => {},
    });
    await assert.rejects(p.create({ name: "bad" }), /start bad failed/);
    assert.deepEqual([...made], []);
    assert.equal((await p.create({ name: "good" })).id, "good");
    assert.deepEqual([...made], ["good"]);
  });

  it("names a node disk by its backing file and size, so any change is a new path", () => {
    const a = nodeDiskFile("node01", "/c1/k/golden.qcow2", 6);
    assert.match(a, /^node01-[0-9a-f]{12}\.qcow2$/);
    assert.notEqual(a, nodeDiskFile("node01", "/c2/k/golden.qcow2", 6));
    assert.notEqual(a, nodeDiskFile("node01", "/c1/k/golden.qcow2", 7));
    assert.equal(a, nodeDiskFile("node01", "/c1/k/golden.qcow2", 6));
  });
});
