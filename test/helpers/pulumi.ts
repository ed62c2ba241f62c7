/**
 * The real Pulumi CLI for tests and benchmarks: built from Go modules (or
 * reused) by scripts/pulumi-cli.sh, put on PATH, and a stack of this project
 * directory on a file backend in a scratch directory.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";
import { ROOT } from "./sandbox";

/** The CLI's directory (cached outside the repository; seconds when built before), put on PATH. */
export function usePulumiCli(): string {
  const dir = execFileSync("bash", [path.join(ROOT, "scripts", "pulumi-cli.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 40 * 60_000,
  }).trim();
  if (!(process.env.PATH ?? "").split(":").includes(dir)) {
    process.env.PATH = `${dir}:${process.env.PATH}`;
  }
  return dir;
}

/**
 * Which Node.js language host the CLI in `dir` runs programs with, as
 * scripts/pulumi-cli.sh recorded it ("official ..." or "fallback: ..."); a
 * CLI installed by other means ships the official one.
 */
export function languageHostOf(dir: string): string {
  const f = path.join(dir, "language-host");
  return fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim() : "official (installed with the CLI)";
}

/** Is the official host's source here for scripts/pulumi-cli.sh to build? */
export function officialHostSourceAvailable(): boolean {
  const src =
    process.env.FAME_PULUMI_LANGUAGE_NODEJS_SRC ||
    path.join(ROOT, "..", "shared", "vendor", "pulumi-language-nodejs");
  return fs.existsSync(path.join(src, "main.go"));
}

/** Offline CLI settings: private PULUMI_HOME, file backend and passphrase under `work`. */
export function pulumiEnv(work: string): Record<string, string> {
  fs.mkdirSync(path.join(work, "state"), { recursive: true });
  return {
    PULUMI_HOME: path.join(work, "pulumi-home"),
    PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: "fame-test-passphrase",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
}

/** A stack of this project (LocalWorkspace on the project directory itself). */
export async function projectStack(
  stackName: string,
  envVars: Record<string, string>,
): Promise<Stack> {
  return LocalWorkspace.createOrSelectStack(
    { stackName, workDir: ROOT },
    { pulumiHome: envVars.PULUMI_HOME, envVars },
  );
}

/** Removes the stack and the config file it left in the project directory. */
export async function removeProjectStack(stack: Stack): Promise<void> {
  await stack.workspace.removeStack(stack.name).catch(() => {});
  fs.rmSync(path.join(ROOT, `Pulumi.${stack.name}.yaml`), { force: true });
}
