/**
 * Providers that manage host files (no libvirt): SSH key, node disk, seed disk,
 * artifact file. Each is loaded from its serialized form, as the engine does.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { seedFiles } from "../../lib/outputs";
import { parseOwnerRecord } from "../../lib/ownership";
import { GiB } from "../../lib/units";
import {
  ArtifactFile,
  type ArtifactFileInputs,
  type ArtifactFileOutputs,
} from "../../providers/artifactFile";
import { Directory, type DirectoryInputs, type DirectoryOutputs } from "../../providers/directory";
import { NodeDisk, type NodeDiskInputs, type NodeDiskOutputs } from "../../providers/nodeDisk";
import { SeedDisk, type SeedDiskInputs, type SeedDiskOutputs } from "../../providers/seedDisk";
import { SshKey, type SshKeyInputs, type SshKeyOutputs } from "../../providers/sshKey";
import { loadSerialized } from "../helpers/engine";
import { scratchDir } from "../helpers/sandbox";

/** Reads a file out of an ext4 image without mounting it. */
function debugfsCat(image: string, file: string): string {
  return execFileSync("debugfs", ["-R", `cat /${file}`, image], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
}

describe("host-file providers (loaded from their serialized form)", function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = scratchDir("files");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("Directory: records its stack as owner, refuses another's, and keeps the record while data is left", async () => {
    const d = path.join(dir, "owned");
    const mine: DirectoryInputs = { path: d, mode: 0o755, owner: "fame/first" };
    const { provider: p } = await loadSerialized<DirectoryInputs, DirectoryOutputs>(
      () => new Directory("d", mine),
    );
    const { outs } = await p.create(mine);
    const record = parseOwnerRecord(fs.readFileSync(path.join(d, ".fame-owner"), "utf8"));
    assert.ok(!("problem" in record) && record.owner === "fame/first" && record.kind === "dir");
    assert.equal(fs.statSync(d).mode & 0o777, 0o755);
    // Another stack: refused in check (preview) and in create, the record untouched.
    const theirs: DirectoryInputs = { ...mine, owner: "fame/second" };
    const failures = (await p.check({}, theirs)).failures ?? [];
    assert.match(failures[0]?.reason ?? "", /belongs to fame stack fame\/first/);
    await assert.rejects(p.create(theirs), /fame stack fame\/first owns it, not fame\/second/);
    assert.deepEqual((await p.check({}, mine)).failures, []);
    // Deleted with user data inside: the directory and its record stay.
    fs.writeFileSync(path.join(d, "librarian.db"), "data");
    await p.delete(d, outs!);
    assert.ok(fs.existsSync(path.join(d, ".fame-owner")), "the record stays with the data");
    // With nothing but the record left: both go.
    fs.rmSync(path.join(d, "librarian.db"));
    await p.delete(d, outs!);
    assert.ok(!fs.existsSync(d));
  });

  it("SshKey: makes a key pair ssh accepts, replaces only on a new comment, keeps it on read", async () => {
    const inputs: SshKeyInputs = { comment: "fame-test" };
    const { provider: p } = await loadSerialized<SshKeyInputs, SshKeyOutputs>(
      () => new SshKey("k", inputs),
    );
    assert.deepEqual((await p.check({}, inputs)).failures, []);
    assert.equal((await p.check({}, { comment: "has space" })).failures?.length, 1);
    const { outs } = await p.create(inputs);
    const keyFile = path.join(dir, "id");
    fs.writeFileSync(keyFile, outs!.privateKey, { mode: 0o600 });
    assert.equal(
      execFileSync("ssh-keygen", ["-y", "-f", keyFile], { encoding: "utf8" }).trim(),
      outs!.publicKey,
    );
    assert.deepEqual((await p.read("x", outs)).props, outs);
    assert.equal((await p.diff("x", outs!, inputs)).changes, false);
    assert.deepEqual((await p.diff("x", outs!, { comment: "other" })).replaces, ["comment"]);
  });

  it("NodeDisk: a qcow2 overlay of the golden image, tiny at creation, replaced when its base changes", async () => {
    const base = path.join(dir, "golden.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, String(3 * GiB)]);
    const inputs: NodeDiskInputs = {
      path: path.join(dir, "node01-abc.qcow2"),
      backingFile: base,
      sizeBytes: 3 * GiB,
    };
    const { provider: p } = await loadSerialized<NodeDiskInputs, NodeDiskOutputs>(
      () => new NodeDisk("d", inputs),
    );
    assert.deepEqual((await p.check({}, inputs)).failures, []);
    const { id, outs } = await p.create(inputs);
    assert.equal(id, inputs.path);
    assert.equal(outs?.backingFile, base);
    assert.equal(outs?.sizeBytes, 3 * GiB);
    assert.ok(
      (outs?.allocatedBytes ?? Infinity) < 1024 * 1024,
      `overlay allocates ${outs?.allocatedBytes} bytes`,
    );
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "--output=json", inputs.path], { encoding: "utf8" }),
    );
    assert.equal(info["backing-filename"], base);
    assert.equal(info["backing-filename-format"], "qcow2");
    assert.deepEqual((await p.read(id, outs)).props, outs);
    assert.equal((await p.diff(id, outs!, inputs)).changes, false);
    assert.deepEqual(
      (await p.diff(id, outs!, { ...inputs, backingFile: "/other.qcow2" })).replaces,
      ["backingFile"],
    );
    // Adopted after an interrupted run; refused when it is another disk.
    assert.equal((await p.create(inputs)).id, inputs.path);
    await assert.rejects(
      p.create({ ...inputs, sizeBytes: 4 * GiB }),
      /already exists on another base/,
    );
    await p.delete(id, outs!);
    assert.ok(!fs.existsSync(inputs.path));
    assert.deepEqual(await p.read(id, outs), {});
  });

  it("SeedDisk: an ext4 image with the files, the password only as a hash, content never in outputs", async () => {
    const inputs: SeedDiskInputs = {
      path: path.join(dir, "node01.seed.img"),
      files: {
        authorized_keys: "ssh-ed25519 AAAA test\n",
        id_ed25519: "PRIVATE\n",
        password: "s3cret pass",
      },
    };
    const { provider: p } = await loadSerialized<SeedDiskInputs, SeedDiskOutputs>(
      () => new SeedDisk("s", inputs),
    );
    const { outs } = await p.create(inputs);
    assert.deepEqual(Object.keys(outs ?? {}).sort(), ["contentHash", "path"]);
    assert.equal(fs.statSync(inputs.path).mode & 0o777, 0o600);
    assert.ok(fs.statSync(inputs.path).blocks * 512 <= 256 * 1024, "seed allocates little");
    const label = execFileSync("e2label", [inputs.path], { encoding: "utf8" }).trim();
    assert.equal(label, "FAMESEED");
    assert.equal(debugfsCat(inputs.path, "authorized_keys"), "ssh-ed25519 AAAA test\n");
    assert.equal(debugfsCat(inputs.path, "id_ed25519"), "PRIVATE\n");
    const hash = debugfsCat(inputs.path, "password-hash");
    assert.match(hash, /^\$6\$/);
    assert.equal(debugfsCat(inputs.path, "password"), "");
    assert.ok(
      !fs.readFileSync(inputs.path).includes("s3cret pass"),
      "plain password not on the disk",
    );
    // Verify the hash really is of the password.
    const salt = hash.split("$")[2] ?? "";
    assert.equal(
      execFileSync("openssl", ["passwd", "-6", "-salt", salt, "s3cret pass"], {
        encoding: "utf8",
      }).trim(),
      hash,
    );

    const id = inputs.path;
    assert.equal((await p.diff(id, outs!, inputs)).changes, false);
    const rotated = {
      ...inputs,
      files: { ...inputs.files, authorized_keys: "ssh-ed25519 BBBB new\n" },
    };
    assert.deepEqual(await p.diff(id, outs!, rotated), {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    await p.update(id, outs!, rotated);
    assert.equal(debugfsCat(inputs.path, "authorized_keys"), "ssh-ed25519 BBBB new\n");
    await p.delete(id, outs!);
    assert.ok(!fs.existsSync(inputs.path));
  });

  it("SeedDisk: content too big for the seed fails, leaving no seed (or the old one) and nothing part-made", async () => {
    const inputs: SeedDiskInputs = { path: path.join(dir, "node09.seed.img"), files: {} };
    const big = { ...inputs, files: { big: "x".repeat(3 * 2 ** 20) } };
    const { provider: p } = await loadSerialized<SeedDiskInputs, SeedDiskOutputs>(
      () => new SeedDisk("s", inputs),
    );
    const leftovers = () => fs.readdirSync(dir).filter((f) => f.startsWith("node09."));
    await assert.rejects(p.create(big), /mke2fs/);
    assert.deepEqual(leftovers(), []);
    const { outs } = await p.create(inputs);
    const before = fs.readFileSync(inputs.path);
    await assert.rejects(p.update(inputs.path, outs!, big), /mke2fs/);
    assert.deepEqual(leftovers(), ["node09.seed.img"]);
    assert.ok(fs.readFileSync(inputs.path).equals(before), "the old seed is untouched");
  });

  it("SeedDisk: carries the stack's user, sudo rule and /etc/hosts; a new subnet rewrites it in place", async () => {
    const stack = { user: "fabric", hostbase: "dn", octets123: "10.213.60" };
    const inputs: SeedDiskInputs = {
      path: path.join(dir, "dn01.seed.img"),
      files: seedFiles(stack, "ssh-ed25519 AAAA test", "PRIVATE\n"),
    };
    const { provider: p } = await loadSerialized<SeedDiskInputs, SeedDiskOutputs>(
      () => new SeedDisk("s", inputs),
    );
    const { outs } = await p.create(inputs);
    // what the image's fame-seed script reads at boot (lib/image seedScript)
    assert.equal(debugfsCat(inputs.path, "user"), "fabric\n");
    assert.equal(debugfsCat(inputs.path, "sudoers"), "fabric ALL=(ALL) NOPASSWD:ALL\n");
    const hosts = debugfsCat(inputs.path, "hosts");
    assert.match(hosts, /^10\.213\.60\.254\ttorms$/m);
    assert.match(hosts, /^10\.213\.60\.2\tdn02$/m);
    assert.match(hosts, /^127\.0\.0\.1\tlocalhost$/m);
    assert.equal(debugfsCat(inputs.path, "authorized_keys"), "ssh-ed25519 AAAA test\n");

    const moved = {
      ...inputs,
      files: seedFiles({ ...stack, octets123: "10.213.61" }, "ssh-ed25519 AAAA test", "PRIVATE\n"),
    };
    const d = await p.diff(inputs.path, outs!, moved);
    assert.equal(d.changes, true);
    assert.deepEqual(d.replaces, [], "the seed is rewritten in place, never replaced");
    await p.update(inputs.path, outs!, moved);
    assert.match(debugfsCat(inputs.path, "hosts"), /^10\.213\.61\.2\tdn02$/m);
    assert.equal(debugfsCat(inputs.path, "user"), "fabric\n");
    await p.delete(inputs.path, outs!);
  });

  it("ArtifactFile: writes, reads real content (drift shows), updates and deletes", async () => {
    const inputs: ArtifactFileInputs = {
      path: path.join(dir, "a", "env.sh"),
      content: "export A=1\n",
      mode: 0o644,
    };
    const { provider: p } = await loadSerialized<ArtifactFileInputs, ArtifactFileOutputs>(
      () => new ArtifactFile("f", inputs),
    );
    await p.create(inputs);
    assert.equal(fs.readFileSync(inputs.path, "utf8"), "export A=1\n");
    fs.writeFileSync(inputs.path, "edited\n");
    const seen = (await p.read(inputs.path, inputs)).props!;
    assert.equal(seen.content, "edited\n");
    assert.equal((await p.diff(inputs.path, seen, inputs)).changes, true);
    await p.update(inputs.path, seen, inputs);
    assert.equal(fs.readFileSync(inputs.path, "utf8"), "export A=1\n");
    await p.delete(inputs.path, inputs);
    assert.deepEqual(await p.read(inputs.path, inputs), {});
  });
});
