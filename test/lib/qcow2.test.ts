import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readQcow2Header } from "../../lib/host/qcow2";

describe("qcow2 header reader", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-qcow2-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reports what qemu-img info reports: virtual size and backing file", async () => {
    const base = path.join(dir, "golden.qcow2");
    const overlay = path.join(dir, "node01.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "3G"]);
    execFileSync("qemu-img", [
      "create",
      "-q",
      "-f",
      "qcow2",
      "-F",
      "qcow2",
      "-b",
      base,
      overlay,
      "4G",
    ]);
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "--output=json", overlay], { encoding: "utf8" }),
    );
    const header = await readQcow2Header(overlay);
    assert.equal(header.virtualSizeBytes, info["virtual-size"]);
    assert.equal(header.backingFile, info["backing-filename"]);
    assert.deepEqual(await readQcow2Header(base), {
      version: 3,
      virtualSizeBytes: 3 * 2 ** 30,
      backingFile: "",
    });
  });

  it("resolves a relative backing file against the image's directory", async () => {
    const overlay = path.join(dir, "rel.qcow2");
    execFileSync(
      "qemu-img",
      ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "golden.qcow2", overlay],
      { cwd: dir },
    );
    assert.equal((await readQcow2Header(overlay)).backingFile, path.join(dir, "golden.qcow2"));
  });

  it("refuses a file that is not qcow2", async () => {
    const raw = path.join(dir, "raw.img");
    fs.writeFileSync(raw, Buffer.alloc(4096));
    await assert.rejects(readQcow2Header(raw), /is not a qcow2 image/);
  });
});
