/**
 * The golden image the LFS end-to-end test boots: the Debian image with the
 * Librarian File System. Its nodes' user and names (LFS_STACK) reach them on
 * their seed disks, not through the image.
 */
import * as path from "node:path";
import type { Suite } from "../../lib/config";
import type { GoldenImageInputs } from "../../providers/goldenImage";
import { testSuite } from "./debianCluster";
import { TM_LIBRARIAN } from "./lfs";
import { testImageInputs } from "./testImage";

export const LFS_MIRROR = process.env.FAME_TEST_MIRROR ?? "http://deb.debian.org/debian";
export const LFS_HOSTBASE = "ln";
export const LFS_OCTETS = "10.213.70";
export const LFS_PORT = 9093;
export const LFS_STACK = { user: "l4mdc", hostbase: LFS_HOSTBASE, octets123: LFS_OCTETS } as const;

/** `suite`: default bookworm, or FAME_TEST_SUITE. */
export function lfsImageInputs(suite: Suite = testSuite()): GoldenImageInputs {
  return testImageInputs({
    suite,
    mirror: LFS_MIRROR,
    sizeGbytes: 4,
    lfs: { tmLibrarianDir: path.resolve(TM_LIBRARIAN), port: LFS_PORT },
  });
}
