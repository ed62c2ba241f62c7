import * as assert from "node:assert/strict";
import { sizeRatio, speedRatio } from "../../bench/report";

describe("bench report wording", () => {
  it("says faster only when fame is faster, slower (with the ratio) when it is slower", () => {
    assert.equal(speedRatio(8.76, 21.83), "2.5x faster");
    // The README's 1-node row once said "0.9x faster" for 1.28 s against 1.17 s.
    assert.equal(speedRatio(1.28, 1.17), "1.1x slower");
    assert.equal(speedRatio(1.0, 1.0), "same speed");
    assert.equal(speedRatio(1.0, 1.02), "same speed", "within the 0.05x the ratio is printed to");
    assert.equal(speedRatio(1.0, 0.5), "2.0x slower");
  });

  it("says smaller or larger for sizes the same way", () => {
    assert.equal(sizeRatio(300 * 1024, 963 * 2 ** 20), "3287x smaller");
    assert.equal(sizeRatio(2 * 2 ** 20, 2 ** 20), "2x larger");
    assert.equal(sizeRatio(2 ** 20, 2 ** 20), "same size");
  });
});
