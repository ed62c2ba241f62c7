import * as assert from "node:assert/strict";
import { ownerRecordText, ownershipProblems, parseOwnerRecord } from "../../lib/ownership";

describe("ownership (pure)", () => {
  const now = new Date("2026-12-01T00:00:00Z");
  const base = { dir: "/srv/fame", famPath: "/srv/fame/FAM" };

  it("round-trips a record and refuses damaged ones", () => {
    assert.deepEqual(parseOwnerRecord(ownerRecordText("p/s", "fam", now)), {
      owner: "p/s",
      kind: "fam",
      since: "2026-12-01T00:00:00.000Z",
    });
    assert.ok("problem" in parseOwnerRecord("{"));
    assert.ok("problem" in parseOwnerRecord('{"owner":""}'));
  });

  it("nothing recorded, or recorded as this stack: no problem", () => {
    assert.deepEqual(ownershipProblems(base, "p/s"), []);
    assert.deepEqual(
      ownershipProblems(
        { ...base, dirRecord: ownerRecordText("p/s", "dir", now), appliedOwner: "p/s" },
        "p/s",
      ),
      [],
    );
  });

  it("the owner record wins over an older applied.json; a damaged record claims nothing but is named", () => {
    const [p] = ownershipProblems(
      { ...base, dirRecord: ownerRecordText("p/other", "dir", now), appliedOwner: "p/s" },
      "p/s",
    );
    assert.match(
      p ?? "",
      /fame:dir \/srv\/fame belongs to fame stack p\/other \(\/srv\/fame\/\.fame-owner\)/,
    );
    const damaged = ownershipProblems({ ...base, dirRecord: "x" }, "p/s");
    assert.equal(damaged.length, 1);
    assert.match(damaged[0] ?? "", /\/srv\/fame\/\.fame-owner is not a valid fame owner record/);
  });

  it("a FAM file of another stack is refused, also when the directory is this stack's", () => {
    const problems = ownershipProblems(
      { ...base, famRecord: ownerRecordText("p/other", "fam", now) },
      "p/s",
    );
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? "", /fame:famPath \/srv\/fame\/FAM belongs to fame stack p\/other/);
  });
});
