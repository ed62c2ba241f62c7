import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";

describe("PR preview workflow", () => {
  const wf = parse(
    fs.readFileSync(
      path.join(__dirname, "..", "..", ".github", "workflows", "preview.yml"),
      "utf8",
    ),
  );

  it("runs on pull requests and may comment on them", () => {
    assert.ok(wf.on.pull_request);
    assert.equal(wf.permissions["pull-requests"], "write");
  });

  it("posts pulumi preview --diff as a PR comment", () => {
    const steps = wf.jobs.preview.steps as { uses?: string; with?: Record<string, unknown> }[];
    const pulumi = steps.find((s) => s.uses?.startsWith("pulumi/actions@"));
    assert.ok(pulumi, "uses pulumi/actions");
    assert.equal(pulumi.with?.command, "preview");
    assert.equal(pulumi.with?.diff, true);
    assert.equal(pulumi.with?.["comment-on-pr"], true);
    assert.ok(steps.some((s) => (s as { run?: string }).run === "npm ci"));
  });

  it("runs only tests that need no root and no libvirt, as the non-root runner it documents", () => {
    const steps = wf.jobs.preview.steps as { run?: string; env?: Record<string, string> }[];
    const runs = steps.map((s) => s.run ?? "").join("\n");
    assert.doesNotMatch(runs, /\bsudo\b|test:unit|npm test\b/, "nothing that needs root");
    assert.match(runs, /npm run test:nonroot/);
    const pkg = JSON.parse(
      fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"),
    ) as { scripts: Record<string, string> };
    const script = pkg.scripts["test:nonroot"] ?? "";
    // Pure, mock and host-file tests only: no provider tests (libvirt, chown), no e2e, no sandbox.
    const globs = script.match(/'[^']+'/g) ?? [];
    assert.deepEqual(globs, ["'test/lib/**/*.test.ts'", "'test/components/**/*.test.ts'"]);
    assert.doesNotMatch(script, /hooks\.ts/, "no root hooks (they start and sweep sandboxes)");
    // The tm-librarian suite the Librarian test runs is checked out beside the code.
    const librarian = steps.find((s) => (s as { with?: { repository?: string } }).with?.repository);
    assert.equal(
      (librarian as { with?: { repository?: string } })?.with?.repository,
      "FabricAttachedMemory/tm-librarian",
    );
    const test = steps.find((s) => /test:nonroot/.test(s.run ?? ""));
    assert.match(test?.env?.FAME_TM_LIBRARIAN ?? "", /tm-librarian/);
  });
});
