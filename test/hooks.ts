/**
 * Mocha root hooks: sweep what killed runs left behind before this run starts,
 * and stop this run's libvirt sandbox and remove its scratch once the whole run is over.
 */
import { removeOwnScratch, stopSandbox, sweepDeadRuns } from "./helpers/sandbox";

export const mochaHooks = {
  beforeAll(): void {
    sweepDeadRuns();
  },
  afterAll(): void {
    stopSandbox();
    removeOwnScratch();
  },
};
