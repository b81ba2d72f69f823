#!/usr/bin/env python3
"""The resident memory of the program qemu-user runs, without the emulator's own.

Usage: guest-rss.py PID GUEST_BINARY [--watch OUT]

qemu-user maps the guest's memory into its own process, beside its own code, heap and
translated-code cache, so the process's VmRSS overstates the guest by 20-30 MiB. This sums
the Rss of /proc/PID/smaps over the guest's mappings only: those near the guest binary's
(within its 4 GiB for a 32-bit guest; qemu keeps a 64-bit guest's memory together too),
leaving out anything executable on the host (qemu, its libraries, the code cache: qemu maps
guest code without host execute permission), the host heap and stack, and files of the host's
own library folders. Prints KiB once, or with --watch keeps writing the largest value seen to
OUT every 100 ms until PID ends.
"""
import os
import re
import sys
import time

HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
HOST_DIRS = ("/usr/lib/x86_64-linux-gnu/", "/lib/x86_64-linux-gnu/", "/usr/bin/", "/usr/lib64/")
WINDOW = 64 << 30


def guest_kib(pid, binary):
    mappings = []
    current = None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            header = HEADER.match(line)
            if header:
                current = [int(header.group(1), 16), header.group(3), header.group(4), 0]
                mappings.append(current)
            elif line.startswith("Rss:") and current is not None:
                current[3] = int(line.split()[1])
    anchor = min(m[0] for m in mappings if m[2] == binary)
    total = 0
    for start, perms, path, rss in mappings:
        if not (anchor - (4 << 30) <= start < anchor + WINDOW):
            continue
        if "x" in perms or path.startswith(HOST_DIRS) or path.startswith("["):
            continue
        total += rss
    return total


def main():
    pid, binary = sys.argv[1], os.path.realpath(sys.argv[2])
    if len(sys.argv) == 3:
        print(guest_kib(pid, binary))
        return
    out, peak = sys.argv[4], 0
    while os.path.exists(f"/proc/{pid}"):
        try:
            peak = max(peak, guest_kib(pid, binary))
        except (OSError, ValueError):
            break
        with open(out + ".tmp", "w") as f:
            f.write(f"{peak}\n")
        os.replace(out + ".tmp", out)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
