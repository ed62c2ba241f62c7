/**
 * fame's boot initrd for TCG nodes (issue 19, README "Boot time"): a small
 * initramfs made on the host from the golden image's own initrd. It holds a
 * static busybox, the root's drivers (virtio_pci, virtio_blk, ext4 and their
 * dependencies, taken from the image's initrd, so they match its kernel) and
 * templates/boot/init.sh, which loads them, mounts the root read-only and
 * hands over to systemd. systemd then checks the root (systemd-fsck-root, as
 * on a boot without initramfs) and remounts it by /etc/fstab. Not part of the
 * image recipe: the image and its cache key stay as they are.
 *
 * Pure: the newc cpio format, modules.dep, the ELF check. The host side is
 * lib/host/bootinitrd.ts.
 */

/**
 * Part of the file name: a change to what goes in (or to init.sh) is a new
 * file. v2: /init also mounts the root's /run with the masks below.
 */
export const BOOT_INITRD_VERSION = "2";

/** The file fame writes beside the image's initrd.img. */
export const BOOT_INITRD_FILE = `fame-initrd-v${BOOT_INITRD_VERSION}.img`;

/** What the root on /dev/vda needs; the rest loads from the root's own udev. */
export const ROOT_MODULES: readonly string[] = [
  "virtio_pci",
  "virtio_blk",
  "ext4",
  "crc32c_generic",
];

/**
 * Units a node never needs that systemd would start at every boot, each a
 * modprobe run (about 1 s of emulated CPU): no device mapper, EFI or DRM
 * (blacklisted) on a node; loop and dm_mod still load on first use (their
 * /dev nodes autoload them).
 */
export const MASKED_UNITS: readonly string[] = [
  "modprobe@dm_mod.service",
  "modprobe@loop.service",
  "modprobe@efi_pstore.service",
  "modprobe@drm.service",
];

/**
 * Generators for what a node does not have: a GPT root or ESP, hibernation,
 * systemd-boot, dm-verity/integrity/crypt volumes, offline updates, and
 * (trixie) sshd on AF_VSOCK, whose probe loads the vsock and VMware VMCI
 * drivers to find no vsock device; sshd on the network is ssh.service's. One
 * that is not installed is masked harmlessly.
 */
export const MASKED_GENERATORS: readonly string[] = [
  "systemd-gpt-auto-generator",
  "systemd-hibernate-resume-generator",
  "systemd-bless-boot-generator",
  "systemd-veritysetup-generator",
  "systemd-integritysetup-generator",
  "systemd-cryptsetup-generator",
  "systemd-system-update-generator",
  "systemd-ssh-generator",
];

/**
 * The initrd's tree init.sh copies into the tmpfs it mounts on the root's
 * /run: systemd keeps a /run that is already mounted (as after
 * initramfs-tools) and reads runtime masks there, so they hold for this boot
 * only and the image is unchanged.
 */
export const RUN_TREE = "fame-run";

/** The RUN_TREE entries: directories, and each mask a symlink to /dev/null. */
export function runMaskEntries(): CpioEntry[] {
  const dir = (name: string) => ({ name, mode: 0o040755, data: Buffer.alloc(0) });
  const mask = (name: string) => ({ name, mode: 0o120777, data: Buffer.from("/dev/null") });
  return [
    dir(RUN_TREE),
    dir(`${RUN_TREE}/systemd`),
    dir(`${RUN_TREE}/systemd/system`),
    dir(`${RUN_TREE}/systemd/system-generators`),
    ...MASKED_UNITS.map((u) => mask(`${RUN_TREE}/systemd/system/${u}`)),
    ...MASKED_GENERATORS.map((g) => mask(`${RUN_TREE}/systemd/system-generators/${g}`)),
  ];
}

/** The list init.sh loads, in order (file names under lib/modules/ of the initrd). */
export const MODULE_ORDER_FILE = "lib/modules/order";

export interface CpioEntry {
  /** Path without a leading slash ("init", "bin/busybox"). */
  name: string;
  /** File type and permission bits (0o100755, 0o040755; 0o120777 a symlink, its target the data). */
  mode: number;
  data: Buffer;
}

const NEWC_MAGIC = "070701";
const TRAILER = "TRAILER!!!";
const pad4 = (n: number) => (4 - (n % 4)) % 4;

/**
 * Reads newc archives from `buf` at `offset` up to their trailer: the entries
 * (regular files and directories; links and devices are skipped) and where
 * the archive ended, padding included.
 */
export function readNewc(buf: Buffer, offset = 0): { entries: CpioEntry[]; end: number } {
  const entries: CpioEntry[] = [];
  let at = offset;
  for (;;) {
    if (buf.length < at + 110 || buf.toString("latin1", at, at + 6) !== NEWC_MAGIC) {
      throw new Error(`not a newc cpio archive at byte ${at}`);
    }
    const field = (i: number) =>
      Number.parseInt(buf.toString("latin1", at + 6 + i * 8, at + 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    const nameAt = at + 110;
    const name = buf.toString("utf8", nameAt, nameAt + nameSize - 1);
    const dataAt = nameAt + nameSize + pad4(110 + nameSize);
    const next = dataAt + size + pad4(size);
    if (next > buf.length) throw new Error(`newc entry ${name} runs past the end of the archive`);
    if (name === TRAILER) return { entries, end: next };
    const type = mode & 0o170000;
    if (type === 0o100000 || type === 0o040000) {
      entries.push({
        name: name.replace(/^\.?\//, ""),
        mode,
        data: buf.subarray(dataAt, dataAt + size),
      });
    }
    at = next;
  }
}

/** An uncompressed newc archive of `entries` (uid/gid 0, mtime 0: the same input, the same bytes). */
export function writeNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  const add = (ino: number, name: string, mode: number, data: Buffer) => {
    const nameSize = Buffer.byteLength(name) + 1;
    const nlink = (mode & 0o170000) === 0o040000 ? 2 : 1;
    const fields = [ino, mode, 0, 0, nlink, 0, data.length, 0, 0, 0, 0, nameSize, 0];
    const header = NEWC_MAGIC + fields.map(hex).join("");
    parts.push(
      Buffer.from(header, "latin1"),
      Buffer.from(`${name}\0`),
      Buffer.alloc(pad4(110 + nameSize)),
    );
    parts.push(data, Buffer.alloc(pad4(data.length)));
  };
  for (const [i, e] of entries.entries()) add(i + 1, e.name, e.mode, e.data);
  add(0, TRAILER, 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

export type Compression = "zstd" | "gzip" | "xz" | "none";

/** The compression of an archive (or module) from its first bytes. */
export function compressionOf(buf: Buffer): Compression | undefined {
  const hex = buf.subarray(0, 6).toString("hex");
  if (hex.startsWith("28b52ffd")) return "zstd";
  if (hex.startsWith("1f8b")) return "gzip";
  if (hex === "fd377a585a00") return "xz";
  if (buf.toString("latin1", 0, 6) === NEWC_MAGIC) return "none";
  return undefined;
}

/**
 * An initramfs-tools initrd: optional uncompressed archives first (early
 * microcode), then the main one, compressed. Returns the early entries and
 * the rest (the main archive as stored).
 */
export function splitInitrd(buf: Buffer): { early: CpioEntry[]; main: Buffer } {
  const early: CpioEntry[] = [];
  let at = 0;
  while (at < buf.length && buf.toString("latin1", at, at + 6) === NEWC_MAGIC) {
    const r = readNewc(buf, at);
    early.push(...r.entries);
    at = r.end;
    // Archives are padded to 512 bytes by cpio and concatenated.
    while (at < buf.length && buf[at] === 0) at++;
  }
  return { early, main: buf.subarray(at) };
}

/** A module's name as modprobe knows it: its file's base name without .ko(.xz|.zst|.gz). */
export function moduleName(file: string): string {
  return (file.split("/").pop() ?? file).replace(/\.ko(\.(xz|zst|gz))?$/, "");
}

/** modules.dep: each module's path (relative to the modules directory) and its dependencies' paths. */
export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const dep = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const file = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    dep.set(moduleName(file), { path: file, deps });
  }
  return dep;
}

/**
 * The module files to load for `wanted`, each after what it depends on.
 * A wanted module in neither modules.dep nor modules.builtin is an error:
 * the root could not be mounted.
 */
export function moduleLoadOrder(
  dep: Map<string, { path: string; deps: string[] }>,
  builtin: ReadonlySet<string>,
  wanted: readonly string[],
): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string, chain: string[]) => {
    if (seen.has(name)) return;
    const entry = dep.get(name);
    if (!entry) {
      if (builtin.has(name)) return;
      throw new Error(
        `the image's initrd has no module ${name}${chain.length ? ` (needed by ${chain.join(" <- ")})` : ""} and the kernel does not build it in`,
      );
    }
    seen.add(name);
    for (const d of entry.deps) visit(moduleName(d), [name, ...chain]);
    order.push(entry.path);
  };
  for (const w of wanted) visit(w, []);
  return order;
}

/** Names in modules.builtin (one path per line). */
export function parseBuiltin(text: string): Set<string> {
  return new Set(text.split("\n").filter(Boolean).map(moduleName));
}

/** An ELF64 file's program header table (where, entry size, count), or undefined for any other file. */
export function elf64ProgramHeaders(
  buf: Buffer,
): { phoff: number; phentsize: number; phnum: number } | undefined {
  if (buf.length < 64 || buf.toString("latin1", 0, 4) !== "\x7fELF" || buf[4] !== 2) {
    return undefined;
  }
  return {
    phoff: Number(buf.readBigUInt64LE(32)),
    phentsize: buf.readUInt16LE(54),
    phnum: buf.readUInt16LE(56),
  };
}

/** True for a static ELF executable (no program interpreter): one that runs in an initrd without libc. */
export function isStaticElf(buf: Buffer): boolean {
  const table = elf64ProgramHeaders(buf);
  if (!table) return false;
  const { phoff, phentsize, phnum } = table;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > buf.length) return false;
    if (buf.readUInt32LE(at) === 3) return false; // PT_INTERP
  }
  return true;
}
