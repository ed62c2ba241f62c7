/**
 * Two stacks, one fame:dir (a FAME_DIR exported by the first stack's env.sh
 * is enough): the second is refused before it registers anything, and every
 * byte under the directory stays as it was.
 */
import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { famOwnerFile, ownerRecordText } from "../../lib/ownership";
import { runProgram } from "../helpers/mocks";
import { scratchDir } from "../helpers/sandbox";

const T = (t: string) => `pulumi-nodejs:dynamic/fame:${t}`;

/** Path -> sha256 of every file under `dir`. */
function hashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out[p] = crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");
  }
  return out;
}

describe("program under mocks: files of another stack", function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = scratchDir("owner");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("refuses a fame:dir another stack's owner record claims, naming the path, the owner and the fix", async () => {
    fs.writeFileSync(
      path.join(dir, ".fame-owner"),
      ownerRecordText("fame/first", "dir", new Date()),
    );
    fs.writeFileSync(path.join(dir, "librarian.db"), "db of the first stack");
    fs.writeFileSync(path.join(dir, "dn01.seed.img"), "seed of the first stack");
    const before = hashes(dir);
    await assert.rejects(runProgram({ nodes: "2" }, { FAME_DIR: dir }, "second"), (e: Error) => {
      assert.match(e.message, /refusing this change \(nothing was changed\)/);
      assert.ok(e.message.includes(`fame:dir ${dir} belongs to fame stack fame/first`), e.message);
      assert.ok(e.message.includes(`${dir}/.fame-owner`), e.message);
      assert.match(e.message, /choose another fame:dir .*unset it/);
      return true;
    });
    assert.deepEqual(hashes(dir), before, "nothing under the directory changed");
  });

  it("refuses a directory whose applied.json (older than owner records) names another stack", async () => {
    fs.writeFileSync(path.join(dir, "applied.json"), JSON.stringify({ owner: "fame/first" }));
    await assert.rejects(
      runProgram({ nodes: "1", dir }, {}, "second"),
      new RegExp(`fame:dir ${dir} belongs to fame stack fame/first \\(${dir}/applied.json\\)`),
    );
  });

  it("refuses a FAM file another stack owns, even from a directory of its own", async () => {
    const fam = path.join(dir, "shared-FAM");
    fs.writeFileSync(famOwnerFile(fam), ownerRecordText("fame/first", "fam", new Date()));
    await assert.rejects(
      runProgram({ nodes: "1", dir: path.join(dir, "second"), famPath: fam }, {}, "second"),
      /fame:famPath \S+shared-FAM belongs to fame stack fame\/first .*stacks never share a FAM file/,
    );
  });

  it("accepts its own directory and records itself as the directory's owner", async () => {
    fs.writeFileSync(
      path.join(dir, ".fame-owner"),
      ownerRecordText("fame/first", "dir", new Date()),
    );
    const run = await runProgram({ nodes: "1", dir }, {}, "first");
    const d = run.ofType(T("Directory"))[0];
    assert.equal(d?.inputs.owner, "fame/first");
  });
});
