/**
 * Makes fame's boot initrd (lib/bootinitrd.ts) beside the golden image's
 * initrd.img: decompresses the image's initrd (zstd, gzip or xz), takes the
 * root's modules and modules.dep from it, adds the host's static busybox,
 * templates/boot/init.sh and the /run masks, and writes an uncompressed newc archive. The result
 * depends only on those inputs, so stacks sharing an image share the file;
 * it is written aside and renamed, so a booting node never reads half of it.
 */
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import {
  BOOT_INITRD_FILE,
  type Compression,
  type CpioEntry,
  compressionOf,
  isStaticElf,
  MODULE_ORDER_FILE,
  moduleLoadOrder,
  moduleName,
  parseBuiltin,
  parseModulesDep,
  ROOT_MODULES,
  readNewc,
  runMaskEntries,
  splitInitrd,
  writeNewc,
} from "../bootinitrd";
import { run } from "./exec";

/** The kernel release the modules are for, read back by readBootInitrd. */
const RELEASE_FILE = "lib/modules/release";

const INIT_SCRIPT = path.join(__dirname, "..", "..", "templates", "boot", "init.sh");

/** Where the host's static busybox is (Debian's busybox-static). */
export const HOST_BUSYBOX = "/bin/busybox";

export interface BootInitrd {
  /** The initrd fame boots TCG nodes with. */
  path: string;
  /** The kernel release its modules are for. */
  kernelRelease: string;
  /** The modules its /init loads, in order. */
  modules: string[];
}

/** Why the host cannot make it ("" when it can): the static busybox it needs. */
export async function bootInitrdProblem(busybox = HOST_BUSYBOX): Promise<string> {
  const head = await fs.readFile(busybox).catch(() => undefined);
  if (!head) {
    return `${busybox} is missing: fame's boot initrd for TCG nodes needs a static busybox (apt-get install busybox-static, or run scripts/host-setup.sh)`;
  }
  if (!isStaticElf(head)) {
    return `${busybox} is not statically linked: fame's boot initrd needs Debian's busybox-static (apt-get install busybox-static)`;
  }
  return "";
}

/** Decompresses with zlib or the zstd/xz tools (through files: run() returns text, not bytes). */
export async function decompress(data: Buffer, kind: Compression, tmp: string): Promise<Buffer> {
  if (kind === "none") return data;
  if (kind === "gzip") return zlib.gunzipSync(data);
  const plain = path.join(tmp, "plain");
  const packed = `${plain}.${kind === "zstd" ? "zst" : "xz"}`;
  await fs.rm(plain, { force: true });
  await fs.writeFile(packed, data);
  // Both remove `packed` and leave `plain`.
  if (kind === "zstd") await run("zstd", ["-d", "-q", "-f", "--rm", "-o", plain, packed]);
  else await run("xz", ["-d", "-f", "-q", packed]);
  return fs.readFile(plain);
}

/** The boot initrd's entries for the image's initrd `source` (reads it, and runs zstd/xz in a temporary directory). */
export async function bootInitrdEntries(
  source: string,
  busybox = HOST_BUSYBOX,
): Promise<{ entries: CpioEntry[]; kernelRelease: string; modules: string[] }> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "fame-initrd-"));
  try {
    // trixie's initramfs-tools puts the (already compressed) modules into the uncompressed
    // first archive and modules.dep into the compressed main one: both are read.
    const { early, main } = splitInitrd(await fs.readFile(source));
    const kind = main.length === 0 ? "none" : compressionOf(main);
    if (!kind) throw new Error(`${source}: the initrd's main archive is in an unknown format`);
    const mainEntries =
      main.length === 0 ? [] : readNewc(await decompress(main, kind, tmp)).entries;
    const files = new Map([...early, ...mainEntries].map((e) => [e.name, e] as const));
    const depName = [...files.keys()].find((n) =>
      /^(usr\/)?lib\/modules\/[^/]+\/modules\.dep$/.test(n),
    );
    if (!depName) throw new Error(`${source}: the initrd has no modules.dep`);
    const modDir = path.posix.dirname(depName);
    const kernelRelease = path.posix.basename(modDir);
    const text = (n: string) => files.get(`${modDir}/${n}`)?.data.toString("utf8") ?? "";
    const order = moduleLoadOrder(
      parseModulesDep(text("modules.dep")),
      parseBuiltin(text("modules.builtin")),
      ROOT_MODULES,
    );
    const entries: CpioEntry[] = ["bin", "dev", "lib", "lib/modules", "proc", "root", "sys"].map(
      (name) => ({ name, mode: 0o040755, data: Buffer.alloc(0) }),
    );
    const bb = await fs.readFile(busybox);
    if (!isStaticElf(bb)) throw new Error(await bootInitrdProblem(busybox));
    entries.push({ name: "bin/busybox", mode: 0o100755, data: bb });
    entries.push({ name: "init", mode: 0o100755, data: await fs.readFile(INIT_SCRIPT) });
    entries.push(...runMaskEntries());
    const names: string[] = [];
    for (const rel of order) {
      const f = files.get(`${modDir}/${rel}`);
      if (!f)
        throw new Error(`${source}: modules.dep names ${rel}, which the initrd does not hold`);
      // busybox insmod takes plain .ko: a compressed module (trixie's .ko.xz) is unpacked here.
      const data = await decompress(f.data, compressionOf(f.data) ?? "none", tmp);
      const name = `${moduleName(rel)}.ko`;
      names.push(name);
      entries.push({ name: `lib/modules/${name}`, mode: 0o100644, data });
    }
    entries.push({ name: RELEASE_FILE, mode: 0o100644, data: Buffer.from(`${kernelRelease}\n`) });
    entries.push({
      name: MODULE_ORDER_FILE,
      mode: 0o100644,
      data: Buffer.from(`${names.join("\n")}\n`),
    });
    return { entries, kernelRelease, modules: names.map((n) => moduleName(n)) };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** The boot initrd beside `source`, made when missing; an existing one is read back, not rewritten. */
export async function ensureBootInitrd(
  source: string,
  busybox = HOST_BUSYBOX,
): Promise<BootInitrd> {
  const target = path.join(path.dirname(source), BOOT_INITRD_FILE);
  const existing = await readBootInitrd(target);
  if (existing) return existing;
  const { entries, kernelRelease, modules } = await bootInitrdEntries(source, busybox);
  await writeBeside(target, writeNewc(entries), source);
  return { path: target, kernelRelease, modules };
}

/**
 * Writes one of fame's boot files beside the image's `source`, owned as it
 * is (the image's files are libvirt-qemu's, lib/host/imagebuild: QEMU reads
 * this one too), mode 644; aside and renamed, so a reader never sees half.
 */
export async function writeBeside(target: string, data: Buffer, source: string): Promise<void> {
  const next = `${target}.fame-new-${process.pid}`;
  try {
    await fs.writeFile(next, data, { mode: 0o644 });
    const st = await fs.stat(source);
    await fs.chown(next, st.uid, st.gid).catch(() => undefined);
    await fs.chmod(next, 0o644);
    await fs.rename(next, target);
  } finally {
    await fs.rm(next, { force: true }).catch(() => undefined);
  }
}

/** What a boot initrd file holds, or undefined when there is none (any other error is thrown). */
export async function readBootInitrd(file: string): Promise<BootInitrd | undefined> {
  const data = await fs.readFile(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw e;
  });
  if (!data) return undefined;
  const files = new Map(readNewc(data).entries.map((e) => [e.name, e] as const));
  const order = files.get(MODULE_ORDER_FILE)?.data.toString("utf8") ?? "";
  const modules = order.split("\n").filter(Boolean).map(moduleName);
  const release = files.get(RELEASE_FILE)?.data.toString("utf8").trim() ?? "";
  return { path: file, kernelRelease: release, modules };
}
