"""Running a child process without root's power to read any file (CI runs the suite as root)."""

from __future__ import annotations

import ctypes
import os


def without_dac_override() -> None:
    """For ``subprocess.run(preexec_fn=...)``: in the child, drop the capabilities that let root
    read and search any file, so file permissions apply to it as to any user."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for cap in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
