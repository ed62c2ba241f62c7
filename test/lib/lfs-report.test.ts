import * as assert from "node:assert/strict";
import { ratios, runRatios, summarize, type WorkloadResult } from "../../bench/lfsReport";

const MiB = 2 ** 20;
const phase = (mibPerSecond: number) => ({
  seconds: 64 / mibPerSecond,
  bytes: 64 * MiB,
  daemon: null,
});

describe("bench/lfsReport: /lfs against mapped FAM", () => {
  // Two runs whose mapped figures move 2x, as under TCG: run 1 meets 0.25x both ways, run 2 does not.
  const r: WorkloadResult = {
    mib: 64,
    random: 0,
    features: null,
    runs: [
      {
        seq8_write: phase(60),
        seq8_read: phase(60),
        mapped_write: phase(200),
        mapped_read: phase(150),
      },
      {
        seq8_write: phase(50),
        seq8_read: phase(60),
        mapped_write: phase(400),
        mapped_read: phase(200),
      },
    ],
  };

  it("judges each run on its own mapped figures", () => {
    const each = runRatios(r);
    assert.equal(each.length, 2);
    assert.ok(Math.abs(each[0]!.write - 0.3) < 1e-9 && Math.abs(each[0]!.read - 0.4) < 1e-9);
    assert.ok(Math.abs(each[1]!.write - 0.125) < 1e-9 && Math.abs(each[1]!.read - 0.3) < 1e-9);
  });

  it("a phase a run lacks gives NaN, never a ratio", () => {
    assert.ok(Number.isNaN(runRatios({ ...r, runs: [{ seq8_write: phase(1) }] })[0]!.write));
  });

  it("the medians' ratios are of the medians, not of each run", () => {
    const q = ratios(summarize(r));
    assert.ok(Math.abs(q.write - 55 / 300) < 1e-9, String(q.write));
  });
});
