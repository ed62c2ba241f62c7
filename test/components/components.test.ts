import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { formerNames } from "../../components/cluster";
import { FabricMemory } from "../../components/fabricMemory";
import { NodeNetwork } from "../../components/nodeNetwork";
import { networkPlan } from "../../lib/plan";
import { mockRun } from "../helpers/mocks";

describe("components used directly", () => {
  before(async () => {
    await pulumi.runtime.setMocks(mockRun().mocks, "fame", "components", false);
  });

  it("FabricMemory refuses a size QEMU could not map as IVSHMEM", () => {
    assert.throws(
      () => new FabricMemory("fam", { path: "/srv/FAM", sizeBytes: 3 * 2 ** 30 }),
      (e: Error) =>
        e instanceof pulumi.ResourceError &&
        /sizeBytes 3221225472 must be a power of two/.test(e.message),
    );
  });

  it("a node is found under the names fame gave it before slots, with the current and the last applied hostbase", () => {
    assert.deepEqual(
      formerNames("fame", 1, "node"),
      [],
      "the default hostbase's names are the slots",
    );
    assert.deepEqual(formerNames("fame", 2, "lab"), [{ name: "fame-lab02" }]);
    assert.deepEqual(formerNames("fame", 2, "prod", "lab"), [
      { name: "fame-prod02" },
      { name: "fame-lab02" },
    ]);
    assert.deepEqual(formerNames("c", 12, "node", "lab"), [{ name: "c-lab12" }]);
  });

  it("NodeNetwork refuses a bridge name Linux cannot have", () => {
    const plan = { ...networkPlan("node", "10.0.0"), bridge: "br_this_is_too_long" };
    assert.throws(
      () => new NodeNetwork("net", { uri: "qemu:///system", plan, nodes: [], owner: "fame/t" }),
      (e: Error) =>
        e instanceof pulumi.ResourceError && /longer than Linux's 15 characters/.test(e.message),
    );
  });
});
