/** Mocha root hooks: stop the libvirt sandbox once the whole run is over. */
import { stopSandbox } from "./helpers/sandbox";

export const mochaHooks = {
  afterAll(): void {
    stopSandbox();
  },
};
