/**
 * Decoding /proc/self/mounts: the kernel escapes a space, tab, newline and
 * backslash in a path as \040, \011, \012 and \134. A path decoded wrongly
 * hides a killed build's mounts from removeBuildDir, whose recursive delete
 * would then reach into them.
 */
import * as assert from "node:assert/strict";
import { decodeMountField, mountPoints } from "../../lib/host/imagebuild";

describe("/proc/self/mounts decoding", () => {
  it("decodes every octal escape the kernel writes", () => {
    assert.equal(decodeMountField("/var/cache/my\\040images"), "/var/cache/my images");
    assert.equal(decodeMountField("/c/a\\011b"), "/c/a\tb");
    assert.equal(decodeMountField("/c/a\\012b"), "/c/a\nb");
    assert.equal(decodeMountField("/c/a\\134b"), "/c/a\\b");
    // A backslash escaped first, then digits: not read as a second escape.
    assert.equal(decodeMountField("/c/a\\134040"), "/c/a\\040");
    assert.equal(decodeMountField("/c/\\011\\040\\012\\134"), "/c/\t \n\\");
    assert.equal(decodeMountField("/plain/path"), "/plain/path");
  });

  it("reads the decoded bytes as UTF-8", () => {
    const raw = Buffer.from("/c/caf\u00e9\\040x", "utf8").toString("latin1");
    assert.equal(decodeMountField(raw), "/c/caf\u00e9 x");
  });

  it("lists the mount point of every line", () => {
    const mounts = Buffer.from(
      [
        "proc /proc proc rw,nosuid 0 0",
        "proc /var/cache/a\\011b\\134c/.build-k-1/root/proc proc rw 0 0",
        "udev /srv/fam\\040cache/.build-k-2/root/dev devtmpfs rw 0 0",
        "",
      ].join("\n"),
      "utf8",
    );
    assert.deepEqual(mountPoints(mounts), [
      "/proc",
      "/var/cache/a\tb\\c/.build-k-1/root/proc",
      "/srv/fam cache/.build-k-2/root/dev",
    ]);
  });
});
