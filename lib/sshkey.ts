/**
 * Ed25519 SSH key pairs in OpenSSH's own formats, from Node's crypto (no
 * ssh-keygen, no native module). The private key uses the unencrypted
 * "openssh-key-v1" container that `ssh -i` reads.
 */
import * as crypto from "node:crypto";

export interface SshKeyPair {
  /** `ssh-ed25519 AAAA... comment` */
  publicKey: string;
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` ... */
  privateKey: string;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** SSH wire "string": a uint32 length, then the bytes. */
function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  return Buffer.concat([u32(bytes.length), bytes]);
}

function publicBlob(pub: Buffer): Buffer {
  return Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
}

/** Builds the OpenSSH public and private key texts from a 32-byte seed and public key. */
export function encodeEd25519(
  seed: Buffer,
  pub: Buffer,
  comment: string,
  checkint: number,
): SshKeyPair {
  if (seed.length !== 32 || pub.length !== 32) throw new RangeError("ed25519 keys are 32 bytes");
  const blob = publicBlob(pub);
  let secret = Buffer.concat([
    u32(checkint),
    u32(checkint),
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  // Pad to the cipher block size (8 for "none") with 1, 2, 3, ...
  const pad = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "binary"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    u32(1),
    sshString(blob),
    sshString(secret),
  ]);
  const b64 = body
    .toString("base64")
    .replace(/(.{70})/g, "$1\n")
    .trimEnd();
  return {
    publicKey: `ssh-ed25519 ${blob.toString("base64")} ${comment}`.trimEnd(),
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`,
  };
}

/** A fresh Ed25519 key pair. */
export function generateEd25519(comment: string): SshKeyPair {
  const { privateKey } = crypto.generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(String(jwk.d), "base64url");
  const pub = Buffer.from(String(jwk.x), "base64url");
  return encodeEd25519(seed, pub, comment, crypto.randomBytes(4).readUInt32BE());
}
