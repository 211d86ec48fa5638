"""Run a command where the only network is the loopback interface: a new network namespace
(``unshare --user --map-root-user --net``, no privileges needed where user namespaces are on),
its ``lo`` brought up first.

For the Ray tests: a local Ray instance binds its servers to the machine's network address, not
to 127.0.0.1 (Ray has no setting for that); in a namespace holding only ``lo`` it can bind
nothing else, so nothing the tests start listens beyond this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

#: set inside the namespace (by the command below), so a test file can tell it runs there
INSIDE = "VMEVAL_TEST_LOOPBACK_ONLY"

# brings lo up (SIOCGIFFLAGS / SIOCSIFFLAGS with IFF_UP), then becomes the command
_LO_UP_THEN_EXEC = """
import fcntl, os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifr = struct.pack("16sH14s", b"lo", 0, bytes(14))
flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, ifr))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 0x1, bytes(14)))
s.close()
os.execvpe(sys.argv[1], sys.argv[1:], {**os.environ, "VMEVAL_TEST_LOOPBACK_ONLY": "1"})
"""


def available() -> bool:
    """Whether a loopback-only namespace can be made here (Linux, ``unshare``, user namespaces)."""
    unshare = shutil.which("unshare")
    if not sys.platform.startswith("linux") or unshare is None:
        return False
    probe = subprocess.run([unshare, "--user", "--map-root-user", "--net", sys.executable, "-c", _LO_UP_THEN_EXEC,
                            "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def inside() -> bool:
    return os.environ.get(INSIDE) == "1"


def argv(*command: str) -> list[str]:
    """``command`` run in a new loopback-only network namespace."""
    return ["unshare", "--user", "--map-root-user", "--net", sys.executable, "-c", _LO_UP_THEN_EXEC, *command]
