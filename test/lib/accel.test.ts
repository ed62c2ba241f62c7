import * as assert from "node:assert/strict";
import { canReadWrite, kvmAccessWarning, usesHostSystemLibvirtd } from "../../lib/accel";

// As on Debian: libvirt-qemu's primary group is kvm, and /etc/group lists no members of kvm.
const passwd = [
  "root:x:0:0:root:/root:/bin/bash",
  "libvirt-qemu:x:64055:107:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin",
  "alice:x:1000:1000::/home/alice:/bin/bash",
].join("\n");
const group = [
  "root:x:0:",
  "kvm:x:107:",
  "libvirt-qemu:x:64055:",
  "alice:x:1000:",
  "virt:x:990:alice,libvirt-qemu",
].join("\n");

// libvirt-qemu as lib/host/reach finds it (its primary group kvm, and virt).
const qemu = { name: "libvirt-qemu", uid: 64055, gids: [107, 990] };

describe("/dev/kvm access of libvirt's QEMU user", () => {
  it("applies the POSIX classes: owner bits for the owner, group bits for a member, else other", () => {
    const q = { uid: 64055, gids: [107] };
    assert.equal(canReadWrite({ mode: 0o600, uid: 0, gid: 0 }, q), false);
    assert.equal(canReadWrite({ mode: 0o660, uid: 0, gid: 107 }, q), true);
    assert.equal(canReadWrite({ mode: 0o640, uid: 0, gid: 107 }, q), false, "read only");
    assert.equal(canReadWrite({ mode: 0o666, uid: 0, gid: 0 }, q), true);
    assert.equal(
      canReadWrite({ mode: 0o606, uid: 0, gid: 107 }, q),
      false,
      "group bits rule a member",
    );
    assert.equal(canReadWrite({ mode: 0o600, uid: 64055, gid: 0 }, q), true);
    assert.equal(canReadWrite({ mode: 0o600, uid: 5, gid: 5 }, { uid: 0, gids: [0] }), true);
  });

  it("warns for a root-only /dev/kvm, naming mode, owner, the cost and the fix", () => {
    const w = kvmAccessWarning({ kvmStat: { mode: 0o600, uid: 0, gid: 0 }, passwd, group }, qemu);
    assert.equal(
      w,
      '/dev/kvm is 0600 root:root, which libvirt-qemu cannot open: libvirt then probes QEMU again on every define and start (about 1 s each, one at a time; 20+ s per node seen): chgrp kvm /dev/kvm && chmod 660 /dev/kvm (persist with a udev rule KERNEL=="kvm", GROUP="kvm", MODE="0660") and make sure libvirt-qemu is in group kvm',
    );
    // a group the user is not in: named as such
    assert.match(
      kvmAccessWarning({ kvmStat: { mode: 0o660, uid: 0, gid: 1000 }, passwd, group }, qemu) ?? "",
      /^\/dev\/kvm is 0660 root:alice, which libvirt-qemu cannot open/,
    );
    // unknown ids print as numbers
    assert.match(
      kvmAccessWarning({ kvmStat: { mode: 0o660, uid: 7, gid: 4242 }, passwd, group }, qemu) ?? "",
      /^\/dev\/kvm is 0660 7:4242,/,
    );
  });

  it("says nothing when the user can open it, or when there is no /dev/kvm or no such user", () => {
    assert.equal(
      kvmAccessWarning({ kvmStat: { mode: 0o660, uid: 0, gid: 107 }, passwd, group }, qemu),
      undefined,
    );
    assert.equal(
      kvmAccessWarning({ kvmStat: { mode: 0o666, uid: 0, gid: 0 }, passwd, group }, qemu),
      undefined,
    );
    assert.equal(kvmAccessWarning({ passwd, group }, qemu), undefined);
    assert.equal(
      kvmAccessWarning({ kvmStat: { mode: 0o600, uid: 0, gid: 0 }, passwd, group }, undefined),
      undefined,
      "no QEMU user known",
    );
    // Without passwd/group the owner is shown by number.
    assert.match(
      kvmAccessWarning({ kvmStat: { mode: 0o600, uid: 0, gid: 0 } }, qemu) ?? "",
      /^\/dev\/kvm is 0600 0:0, which libvirt-qemu cannot open/,
    );
  });

  it("only the host's own system libvirtd opens this host's /dev/kvm", () => {
    assert.ok(usesHostSystemLibvirtd("qemu:///system"));
    assert.ok(usesHostSystemLibvirtd("qemu:///system?mode=direct"));
    assert.ok(!usesHostSystemLibvirtd("qemu:///system?socket=/tmp/s"));
    assert.ok(!usesHostSystemLibvirtd("qemu:///session"));
    assert.ok(!usesHostSystemLibvirtd("qemu:///systemx"));
  });
});
