import * as pulumi from "@pulumi/pulumi";
import { isPowerOfTwo } from "../lib/units";
import { FamFile } from "../providers/famFile";

/** The QEMU group on Debian: QEMU runs as libvirt-qemu and must map the file. */
export const FAM_GROUP = "libvirt-qemu";
export const FAM_MODE = 0o660;

export interface FabricMemoryArgs {
  /** Absolute path of the FAM backing file. No default: the cluster passes `fame:famPath`. */
  path: pulumi.Input<string>;
  /** Size in bytes, a power of two. No default: the cluster passes `fame:famSize`. */
  sizeBytes: pulumi.Input<number>;
  /**
   * Delete the file when this resource leaves the stack (`pulumi destroy`, or
   * removed from the program), and only a file it created, not one it
   * adopted. A path change never deletes the old file. Default: false, the
   * file is always kept (it is user data).
   */
  deleteOnDestroy?: boolean;
  /** Allow a smaller size, cutting data. Default: false (a shrink is refused). */
  allowShrink?: boolean;
  /**
   * libvirt domains that map the file, shut down before a resize. Default:
   * none. Plain names (not outputs), so the FAM never waits on its users.
   */
  users?: { uri: string; domains: string[]; shutdownTimeoutMs: number };
  /**
   * The stack that owns the file (`<project>/<stack>`), recorded beside it so
   * no other stack adopts or deletes it. Default: no record.
   */
  owner?: string;
}

/**
 * The fabric-attached memory: one host file every node maps through IVSHMEM.
 * Adopts an existing file of the right size untouched, grows in place, never
 * shrinks, and by default outlives the stack.
 */
export class FabricMemory extends pulumi.ComponentResource {
  readonly path: pulumi.Output<string>;
  readonly sizeBytes: pulumi.Output<number>;
  readonly file: FamFile;

  constructor(name: string, args: FabricMemoryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("fame:memory:FabricMemory", name, {}, opts);
    // Components can be used without index.ts's validation: refuse what QEMU would.
    if (typeof args.sizeBytes === "number" && !isPowerOfTwo(args.sizeBytes)) {
      throw new pulumi.ResourceError(
        `FabricMemory ${name}: sizeBytes ${args.sizeBytes} must be a power of two`,
        this,
      );
    }
    const deleteOnDestroy = args.deleteOnDestroy ?? false;
    this.file = new FamFile(
      `${name}-file`,
      {
        path: args.path,
        sizeBytes: args.sizeBytes,
        group: FAM_GROUP,
        mode: FAM_MODE,
        deleteOnDestroy,
        allowShrink: args.allowShrink ?? false,
        users: args.users ?? { uri: "", domains: [], shutdownTimeoutMs: 0 },
        ...(args.owner !== undefined ? { owner: args.owner } : {}),
      },
      // Without the opt-in Pulumi forgets the resource on delete and never asks the provider
      // (whose delete decides again from the file itself when opted in).
      { parent: this, retainOnDelete: !deleteOnDestroy },
    );
    this.path = this.file.path;
    this.sizeBytes = this.file.sizeBytes;
    this.registerOutputs({ path: this.path, sizeBytes: this.sizeBytes });
  }
}
