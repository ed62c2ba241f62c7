import * as assert from "node:assert/strict";
import { cpuHasVirtualization, domainTypeFor } from "../../lib/accel";
import { diffProps, sameValue } from "../../lib/diff";
import { formatSize, isPowerOfTwo, parseSize } from "../../lib/units";

describe("sizes", () => {
  it("parses binary units", () => {
    assert.equal(parseSize("16G"), 16 * 2 ** 30);
    assert.equal(parseSize("16GiB"), 16 * 2 ** 30);
    assert.equal(parseSize("512m"), 512 * 2 ** 20);
    assert.equal(parseSize("1T"), 2 ** 40);
    assert.equal(parseSize("4096"), 4096);
    assert.equal(parseSize("1.5G"), undefined);
    assert.equal(parseSize("G"), undefined);
    assert.equal(parseSize("16X"), undefined);
  });
  it("formats with the largest exact unit", () => {
    assert.equal(formatSize(16 * 2 ** 30), "16G");
    assert.equal(formatSize(1536 * 2 ** 20), "1536M");
    assert.equal(formatSize(1000), "1000");
  });
  it("recognises powers of two", () => {
    assert.ok(isPowerOfTwo(1));
    assert.ok(isPowerOfTwo(2 ** 40));
    assert.ok(!isPowerOfTwo(0));
    assert.ok(!isPowerOfTwo(3 * 2 ** 30));
    assert.ok(!isPowerOfTwo(-2));
  });
});

describe("accelerator choice", () => {
  const intel = "processor\t: 0\nflags\t\t: fpu vme vmx sse2\n";
  const amd = "processor\t: 0\nflags\t\t: fpu svm sse2\n";
  const none = "processor\t: 0\nflags\t\t: fpu vme sse2 vmxnet\n";
  it("sees vmx and svm, not look-alikes", () => {
    assert.ok(cpuHasVirtualization(intel));
    assert.ok(cpuHasVirtualization(amd));
    assert.ok(!cpuHasVirtualization(none));
  });
  it("auto uses kvm only with the CPU flag and /dev/kvm", () => {
    assert.equal(domainTypeFor("auto", intel, true), "kvm");
    assert.equal(domainTypeFor("auto", amd, true), "kvm");
    assert.equal(domainTypeFor("auto", intel, false), "qemu");
    assert.equal(domainTypeFor("auto", none, true), "qemu");
  });
  it("honours the override", () => {
    assert.equal(domainTypeFor("kvm", none, false), "kvm");
    assert.equal(domainTypeFor("tcg", intel, true), "qemu");
  });
});

describe("property diff", () => {
  it("compares JSON-like values regardless of key order", () => {
    assert.ok(sameValue({ a: 1, b: [1, { c: 2, d: 3 }] }, { b: [1, { d: 3, c: 2 }], a: 1 }));
    assert.ok(!sameValue([1, 2], [2, 1]));
  });
  it("separates updates from replacements", () => {
    const d = diffProps(
      { name: "a", size: 1, mode: 2 },
      { name: "b", size: 2, mode: 2 },
      ["name", "size", "mode"],
      ["name"],
    );
    assert.deepEqual(d, {
      changes: true,
      changed: ["name", "size"],
      replaces: ["name"],
      deleteBeforeReplace: true,
    });
    const u = diffProps({ name: "a", size: 1 }, { name: "a", size: 2 }, ["name", "size"], ["name"]);
    assert.deepEqual(u, {
      changes: true,
      changed: ["size"],
      replaces: [],
      deleteBeforeReplace: false,
    });
    const n = diffProps({ name: "a" }, { name: "a" }, ["name"], ["name"]);
    assert.equal(n.changes, false);
  });
});
