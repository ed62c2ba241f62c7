/**
 * The stack configuration schema: every `fame:` key, its type, default and the
 * FAME_* environment variable of the original configurator that stands in for
 * it. This table is the single source of defaults: the program applies them
 * (the SDK does not, and mocks never see Pulumi.yaml), and a test checks that
 * Pulumi.yaml declares exactly the same keys, types and defaults.
 */

export type ConfigType = "string" | "integer" | "boolean";

export interface KeySpec {
  type: ConfigType;
  /** Default as Pulumi.yaml declares it. Absent: computed by the program (see `description`). */
  default?: string | number | boolean;
  /** Environment variables consulted, in order, when the stack leaves the key at its default. */
  env?: readonly string[];
  /** The value must be set with `pulumi config set --secret`. */
  secret?: boolean;
  /**
   * The value may be set with `--secret` (it can hold credentials): fame
   * keeps it secret in state and out of plain files. Plain is accepted too.
   */
  mayBeSecret?: boolean;
  description: string;
}

export const SCHEMA = {
  nodes: {
    type: "integer",
    default: 4,
    env: ["FAME_NODES"],
    description: "Number of node VMs, 1..253 (a power of two wastes no FAM books).",
  },
  running: {
    type: "string",
    default: "all",
    description:
      "Which nodes run: all, none, or a comma-separated list of node numbers or names (e.g. 1,3 or node01,node03). Others are shut down, keeping disks and FAM.",
  },
  shutdownTimeout: {
    type: "integer",
    default: 60,
    description: "Seconds a node gets to shut down gracefully (ACPI) before it is powered off.",
  },
  famAllowShrink: {
    type: "boolean",
    default: false,
    description:
      "Opt-in: allow a smaller fame:famSize. The bytes beyond the new size are cut; without it a shrink is refused. While it stays true every preview warns: set it back to false after the shrink.",
  },
  dir: {
    type: "string",
    env: ["FAME_DIR"],
    description:
      "Absolute artifact directory (console logs, Librarian INI, env.sh). Default: /var/lib/fame/<project>-<stack>.",
  },
  famPath: {
    type: "string",
    env: ["FAME_FAM"],
    description: "Absolute path of the FAM backing file shared by all nodes. Default: <dir>/FAM.",
  },
  famSize: {
    type: "string",
    default: "16G",
    description:
      "FAM size: a power of two from 1G to 256G (above 256G is accepted with a warning, 1T at most). Units K, M, G, T (binary).",
  },
  famMode: {
    type: "string",
    default: "ivshmem",
    env: ["FAME_FAM_MODE"],
    description:
      "How nodes see FAM: ivshmem (a PCI BAR, as the original FAME) or cxl (a CXL type-3 persistent-memory device on a q35 machine, /dev/fam -> /dev/pmemN). Switching restarts the nodes; disks and FAM are kept.",
  },
  famPrealloc: {
    type: "boolean",
    default: false,
    description:
      "Opt-in: each node's QEMU populates every page of the FAM when it starts (QEMU prealloc=on, which keeps the contents), so a node's first write to a FAM page does not pay the host's page-cache allocation. The FAM file then takes its full size on disk and in host memory, and each start takes longer. Changing it restarts the nodes; disks and FAM are kept.",
  },
  famDeleteOnDestroy: {
    type: "boolean",
    default: false,
    description:
      "Opt-in: let `pulumi destroy` (or removing the FAM resource from the program) delete the FAM file, only one fame created (an adopted file is kept). A fame:famPath change never deletes the old file. Off: the file is always kept.",
  },
  vcpus: {
    type: "integer",
    default: 2,
    env: ["FAME_VCPUS"],
    description: "Virtual CPUs per node, 1..64.",
  },
  vdram: {
    type: "integer",
    default: 786432,
    env: ["FAME_VDRAM"],
    description: "DRAM per node in KiB, at least 786432.",
  },
  vfsGbytes: {
    type: "integer",
    default: 6,
    env: ["FAME_VFS_GBYTES"],
    description: "Size in GB of the golden image and of each node's disk, 2..2048.",
  },
  user: {
    type: "string",
    default: "l4mdc",
    env: ["FAME_USER"],
    description: "Normal (non-root) user on each node, with passwordless sudo.",
  },
  suite: {
    type: "string",
    env: ["FAME_SUITE"],
    description:
      "Debian release of the golden image: bookworm or trixie. Default: the release the stack was last applied with (<dir>/applied.json); trixie for a new stack; bookworm for a stack applied before fame had this key. A change rebuilds the image and replaces every node's disk.",
  },
  mirror: {
    type: "string",
    default: "http://deb.debian.org/debian",
    env: ["FAME_MIRROR"],
    description: "Debian mirror the golden image is built from.",
  },
  proxy: {
    type: "string",
    default: "",
    env: ["FAME_PROXY", "http_proxy"],
    mayBeSecret: true,
    description:
      "HTTP proxy used to reach the mirror; nodes get it in their apt config from the seed disk at boot (not part of the image). Kept secret in state; with credentials, set it with --secret.",
  },
  l4fame: {
    type: "string",
    default: "",
    env: ["FAME_L4FAME"],
    description: "Optional L4FAME apt repository (empty: not used).",
  },
  kernel: {
    type: "string",
    default: "linux-image-4.14.0-l4fame",
    env: ["FAME_KERNEL"],
    description: "Kernel package taken from the L4FAME repository when it is configured.",
  },
  hostbase: {
    type: "string",
    default: "node",
    env: ["FAME_HOSTBASE"],
    description:
      "Node name prefix, at most 8 characters, a valid host name start; also names the network and bridge br_<hostbase>.",
  },
  octets123: {
    type: "string",
    default: "192.168.42",
    env: ["FAME_OCTETS123"],
    description: "First three octets of the node subnet; node N is <octets123>.N, torms is .254.",
  },
  libvirtUri: {
    type: "string",
    default: "qemu:///system",
    env: ["FAME_LIBVIRT_URI"],
    description:
      "Local libvirt URI used for every virsh call: qemu:///system or qemu:///session, optionally with ?socket=<path>. Remote URIs are refused (FAM, disks, seeds and the image cache are local).",
  },
  accel: {
    type: "string",
    default: "auto",
    env: ["FAME_ACCEL"],
    description:
      "auto (kvm when the host CPU flags show vmx or svm and /dev/kvm exists, else tcg), kvm or tcg.",
  },
  famezSocket: {
    type: "string",
    default: "",
    env: ["FAME_IVSHMSG"],
    description:
      "Optional absolute path of a FAME-Z server socket; adds an ivshmem-doorbell device.",
  },
  imageCache: {
    type: "string",
    default: "/var/cache/fame/images",
    env: ["FAME_IMAGE_CACHE"],
    description:
      "Absolute directory of golden image builds, named by their recipe's hash and shared by stacks.",
  },
  password: {
    type: "string",
    secret: true,
    description:
      "Optional password for the node user (console and SSH); set it with --secret. Unset: key-only SSH, password locked.",
  },
  kernelPath: {
    type: "string",
    default: "",
    description:
      "Optional absolute path of a kernel to boot instead of the golden image's own (the image stays the root file system).",
  },
  initrdPath: {
    type: "string",
    default: "",
    description: "Absolute path of the initrd that goes with kernelPath (set both or neither).",
  },
  cmdline: {
    type: "string",
    default: "",
    description:
      "Extra kernel command-line arguments, appended after fame's own (root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.hostname=<node> fame.node=<N>; trixie nodes in CXL mode also get pcie_ports=compat clearcpuid=hypervisor).",
  },
  librarian: {
    type: "boolean",
    default: false,
    description:
      "Run the Librarian File System: the Librarian on torms (database kept like FAM) and /lfs on every node. Changes the node image. At most 80 nodes.",
  },
  librarianSource: {
    type: "string",
    default: "https://github.com/FabricAttachedMemory/tm-librarian",
    description:
      "Where tm-librarian comes from: a git URL (fetched at fame:librarianCommit) or a local directory (absolute, or relative to the project directory).",
  },
  librarianCommit: {
    type: "string",
    default: "1f43788822b191682917f912139990f387bb4706",
    description:
      "The tm-librarian commit (40 hex digits) fetched from a git fame:librarianSource; not used for a directory.",
  },
  librarianPort: {
    type: "integer",
    default: 9093,
    description: "TCP port the Librarian listens on, reachable from the node network only.",
  },
  librarianNetns: {
    type: "string",
    default: "",
    env: ["FAME_LIBRARIAN_NETNS"],
    description:
      "Hosts without systemd: run the Librarian (and its monitor) under fame's supervisor inside this network namespace (an `ip netns` name) whose only network is the node network, e.g. one libvirtd runs in. Empty: a confined systemd unit.",
  },
  librarianMonitor: {
    type: "boolean",
    description:
      "Run tm-librarian's monitoring server (lmp.py) on torms beside the Librarian: web pages (and JSON) of FAM memory and books, nodes, interleave groups and the files under /lfs with their books, reading the Librarian's database read-only, reachable from the node network only (and the host) at http://<octets123>.254:<librarianMonitorPort>/lmp/. Default: on when fame:librarian is on.",
  },
  librarianMonitorPort: {
    type: "integer",
    default: 31179,
    description:
      "TCP port of the Librarian monitor on torms's node-network address (upstream's lmp.py port), other than fame:librarianPort.",
  },
  lfsFuse: {
    type: "integer",
    default: 2,
    description:
      "The libfuse /lfs mounts through on every node, under the same adapter and fast paths: 2 (fusepy on libfuse 2: 128 KiB requests) or 3 (fame's ctypes binding of libfuse 3: 1 MiB requests, writes spliced from the kernel into FAM; under TCG a new file's writes about 1.3x, rewrites 2x and reads 1.2x as fast as 2, random 4 KiB writes two thirds as fast). Both are in the LFS image; a change restarts the nodes (kernel argument fame.lfs_fuse). Only with fame:librarian on.",
  },
  librarianReset: {
    type: "boolean",
    default: false,
    description:
      "Opt-in: allow a FAM size or node count change that needs a new Librarian database; every file under /lfs is lost. Without it such a change is refused. While it stays true every preview warns: set it back to false after the rebuild.",
  },
  verbose: {
    type: "boolean",
    default: false,
    env: ["FAME_VERBOSE"],
    description:
      "Log the effective configuration: every key with its value and where it came from (stack, FAME_* variable, default, computed). Set FAME_VERBOSE=1 in pulumi's environment to also trace every host command the providers run.",
  },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof SCHEMA;
export const CONFIG_KEYS = Object.keys(SCHEMA) as ConfigKey[];
/** Keys read with `getSecret` by the program, never resolved as plain text. */
export type SecretKey = "password";
export type PlainKey = Exclude<ConfigKey, SecretKey>;
export const PLAIN_KEYS = CONFIG_KEYS.filter((k): k is PlainKey => !(SCHEMA[k] as KeySpec).secret);
