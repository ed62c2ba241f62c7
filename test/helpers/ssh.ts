/** SSH into guests from inside the sandbox's network namespace (the only place they are reachable). */
import { execFile } from "node:child_process";
import { sandboxNetns } from "./sandbox";

export interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function ssh(
  keyFile: string,
  user: string,
  ip: string,
  command: string,
  timeoutMs = 120_000,
): Promise<SshResult> {
  const args = [
    "netns",
    "exec",
    sandboxNetns(),
    "ssh",
    "-i",
    keyFile,
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=5",
    `${user}@${ip}`,
    command,
  ];
  return new Promise((resolve) => {
    execFile("ip", args, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === "number"
          ? (err as { code: number }).code
          : 255
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `command` and fails the test with its output when it does not succeed. */
export async function sshOk(
  keyFile: string,
  user: string,
  ip: string,
  command: string,
): Promise<string> {
  const r = await ssh(keyFile, user, ip, command);
  if (r.code !== 0)
    throw new Error(`ssh ${user}@${ip} '${command}' exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Waits until the node accepts the key; returns the milliseconds waited. */
export async function waitForSsh(
  keyFile: string,
  user: string,
  ip: string,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  let last: SshResult | undefined;
  while (Date.now() - started < timeoutMs) {
    last = await ssh(keyFile, user, ip, "true", 15_000);
    if (last.code === 0) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 2000));
  }
  throw new Error(`${user}@${ip} did not answer SSH within ${timeoutMs} ms: ${last?.stderr}`);
}
