/**
 * Dynamic provider for a node's boot disk: a qcow2 overlay on the golden
 * image, created in milliseconds and holding only what the node writes. A new
 * golden image means a new overlay (its path carries the image key), created
 * before the old one is deleted so the node switches over in one restart. A
 * renamed node keeps its overlay under the name it was made with.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs/promises";
import * as pulumi from "@pulumi/pulumi";
import { absolutePath } from "../lib/checks";
import * as preflight from "../lib/host/preflight";
import * as qcow2 from "../lib/host/qcow2";
import * as qemuImg from "../lib/host/qemuimg";
import { defineProvider, keepPathInDir, type Undo } from "./contract";

export interface NodeDiskInputs {
  /** Absolute path of the overlay. */
  path: string;
  /** Absolute path of the golden image it is backed by. */
  backingFile: string;
  sizeBytes: number;
}

export interface NodeDiskOutputs extends NodeDiskInputs {
  /** Host bytes allocated when read (grows as the node writes). */
  allocatedBytes: number;
  /** The file's identity (inode and birth time): new when the file is made anew. */
  serial: string;
}

const KEYS = ["path", "backingFile", "sizeBytes"] as const;

/** 20 characters (virtio-blk's serial limit) naming this very file. */
export function diskSerial(ino: bigint, birthtimeNs: bigint): string {
  return crypto.createHash("sha256").update(`${ino}:${birthtimeNs}`).digest("hex").slice(0, 20);
}

async function inspectDisk(inputs: NodeDiskInputs): Promise<NodeDiskOutputs | undefined> {
  const present = await fs.stat(inputs.path, { bigint: true }).catch(() => undefined);
  if (!present) return undefined;
  // The header says what qemu-img info would, without a process per disk.
  const header = await qcow2.readQcow2Header(inputs.path);
  return {
    path: inputs.path,
    backingFile: header.backingFile,
    sizeBytes: header.virtualSizeBytes,
    allocatedBytes: Number(present.blocks) * 512,
    serial: diskSerial(present.ino, present.birthtimeNs),
  };
}

export const nodeDiskProvider = defineProvider<NodeDiskInputs, NodeDiskOutputs>({
  keys: KEYS,
  // Every property defines the disk's content: a change is a new disk. One
  // that keeps its path (a new image cache, a new size) must replace the old
  // file, so it is deleted first.
  replaceKeys: KEYS,
  uniqueKeys: ["path"],
  // A node renamed (fame:hostbase) keeps its disk and what it wrote there: the
  // file stays where it was made while it is of the same image and size in the
  // same directory, whatever the node is now called.
  keep: (olds, news) =>
    keepPathInDir(
      olds,
      news,
      olds.backingFile === news.backingFile && olds.sizeBytes === news.sizeBytes,
    ),
  async check(news) {
    // Unknown inputs are absent here, and failures about them are dropped.
    const failures = absolutePath("path", news.path);
    failures.push(...absolutePath("backingFile", news.backingFile, "golden image"));
    if (!Number.isSafeInteger(news.sizeBytes) || (news.sizeBytes ?? 0) <= 0)
      failures.push({ property: "sizeBytes", reason: "size must be a positive integer" });
    for (const reason of await preflight.missingTools(["qemu-img"])) {
      failures.push({ property: "path", reason });
    }
    return failures;
  },

  async create(inputs: NodeDiskInputs, undo: Undo) {
    const existing = await inspectDisk(inputs);
    if (existing) {
      // Left by an interrupted run: adopt it only if it is exactly this disk.
      if (existing.backingFile !== inputs.backingFile || existing.sizeBytes !== inputs.sizeBytes) {
        throw new Error(
          `disk ${inputs.path} already exists on another base (${existing.backingFile || "none"}, ${existing.sizeBytes} bytes); move it away or delete it`,
        );
      }
      return { id: inputs.path, outs: existing };
    }
    await fs.mkdir(inputs.path.replace(/\/[^/]*$/, ""), { recursive: true });
    // The path held nothing (an existing disk was adopted above): whatever is
    // there after a failure, even a partial qemu-img output, is this create's.
    undo.push(`remove disk ${inputs.path}`, () => fs.rm(inputs.path, { force: true }));
    await qemuImg.createOverlay(inputs.path, inputs.backingFile, inputs.sizeBytes);
    await fs.chmod(inputs.path, 0o600);
    const made = await inspectDisk(inputs);
    if (!made) throw new Error(`qemu-img did not create ${inputs.path}`);
    return { id: inputs.path, outs: made };
  },

  async read(id: string, props?: NodeDiskOutputs) {
    const found = await inspectDisk({
      path: id,
      backingFile: props?.backingFile ?? "",
      sizeBytes: props?.sizeBytes ?? 0,
    });
    return found ? { id, props: found } : {};
  },

  async delete(id: string) {
    await fs.rm(id, { force: true });
  },
});

export type NodeDiskArgs = { [K in keyof NodeDiskInputs]: pulumi.Input<NodeDiskInputs[K]> };

export class NodeDisk extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly allocatedBytes: pulumi.Output<number>;
  declare readonly serial: pulumi.Output<string>;

  constructor(name: string, args: NodeDiskArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      nodeDiskProvider,
      name,
      { ...args, allocatedBytes: undefined, serial: undefined },
      opts,
      "fame",
      "NodeDisk",
    );
  }
}
