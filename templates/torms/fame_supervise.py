#!/usr/bin/python3
# fame: keep one command running, restarting it when it fails (hosts or test
# namespaces without systemd; with systemd, a unit's Restart=on-failure does
# this).
#   fame_supervise.py --pidfile F --log L -- command args...
# Writes its own pid to F, appends the command's output to L, restarts the
# command 2 s after it exits for any reason but a clean stop, and on SIGTERM
# stops the command and exits (removing F).
import os
import signal
import subprocess
import sys
import time


def main(argv):
    if "--" not in argv:
        raise SystemExit("usage: fame_supervise.py --pidfile F --log L -- command...")
    opts, cmd = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    o = dict(zip(opts[::2], opts[1::2]))
    pidfile, log = o["--pidfile"], o["--log"]
    stopping = []
    child = [None]

    def stop(signum, frame):
        stopping.append(signum)
        if child[0] is not None and child[0].poll() is None:
            child[0].terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open(pidfile + ".new", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(pidfile + ".new", pidfile)
    try:
        with open(log, "ab", buffering=0) as out:
            while not stopping:
                out.write(("fame_supervise: starting %s\n" % " ".join(cmd)).encode())
                child[0] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
                with open(pidfile + ".child", "w") as f:
                    f.write("%d\n" % child[0].pid)
                rc = child[0].wait()
                if stopping:
                    break
                out.write(("fame_supervise: exited with %s, restarting in 2 s\n" % rc).encode())
                time.sleep(2)
    finally:
        for f in (pidfile, pidfile + ".child"):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    main(sys.argv[1:])
