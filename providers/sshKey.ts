/**
 * Dynamic provider for the stack's SSH key pair. The key is made once, kept
 * only in the stack's state with the private half as a Pulumi secret, and
 * rotated only by replacing the resource (e.g. `pulumi up --replace`).
 */
import * as pulumi from "@pulumi/pulumi";
import { generateEd25519 } from "../lib/sshkey";
import { type CheckFailure, defineProvider } from "./contract";

export interface SshKeyInputs {
  /** Comment on the public key, e.g. "fame/dev". Changing it makes a new key. */
  comment: string;
}

export interface SshKeyOutputs extends SshKeyInputs {
  publicKey: string;
  privateKey: string;
}

export const sshKeyProvider = defineProvider<SshKeyInputs, SshKeyOutputs>({
  keys: ["comment"],
  replaceKeys: ["comment"],
  check(news) {
    const failures: CheckFailure[] = [];
    if (!/^[\x21-\x7e]{1,64}$/.test(news.comment ?? "")) {
      failures.push({
        property: "comment",
        reason: "comment must be 1..64 printable characters without spaces",
      });
    }
    return failures;
  },
  async create(inputs: SshKeyInputs) {
    const pair = generateEd25519(inputs.comment);
    const outs = { ...inputs, ...pair } satisfies SshKeyOutputs;
    return { id: pair.publicKey.split(" ")[1] ?? inputs.comment, outs };
  },
  async read(id: string, props?: SshKeyOutputs) {
    // The key lives only in state: there is nothing on the host to compare with.
    return props ? { id, props } : {};
  },
  async delete() {
    // Nothing on the host to remove.
  },
});

export type SshKeyArgs = { [K in keyof SshKeyInputs]: pulumi.Input<SshKeyInputs[K]> };

export class SshKey extends pulumi.dynamic.Resource {
  declare readonly publicKey: pulumi.Output<string>;
  declare readonly privateKey: pulumi.Output<string>;

  constructor(name: string, args: SshKeyArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      sshKeyProvider,
      name,
      { ...args, publicKey: undefined, privateKey: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["privateKey"] }),
      "fame",
      "SshKey",
    );
  }
}
