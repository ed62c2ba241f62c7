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
});
