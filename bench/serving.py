"""What the benchmarks that start `voxcast serve` share: starting it and waiting for its
port, and a process's resident memory (/proc)."""
import re
import subprocess
import sys


def start(argv, pattern=r"http://127.0.0.1:(\d+)/"):
    """Starts `argv` (a `voxcast serve` command line, maybe behind a wrapper such as prlimit)
    and returns (process, port): the first group of `pattern` in a line it prints."""
    p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    while True:
        line = p.stdout.readline()
        if not line:
            sys.exit("the server exited at start: " + " ".join(str(a) for a in argv))
        if m := re.search(pattern, line):
            return p, int(m.group(1))


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 when it has none)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
