"""Runs INSIDE a build container, beside the driver (copied in as /mb/lib/mb_limits.py; stdlib
only): what the container's cgroup says about the limits a failed build ran into, and which of
its folders in memory it filled."""

import os


def limits_hit():
    """What the container's cgroup says about its limits: forks refused by the process limit
    and processes the OOM killer ended. cgroup v1 and v2 lay the counters out differently."""
    found = []
    forks = _cgroup_counter(("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events"), "max")
    if forks:
        limit = _read_first(("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"))
        found.append(f"the process limit ({limit}) refused {forks} new process(es)")
    kills = _cgroup_counter(("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"),
                            "oom_kill")
    if kills:
        found.append(f"the memory limit ({_memory_limit()}) killed {kills} process(es)")
    return found


def full_tmpfs(mounts="/proc/self/mounts"):
    """The build's tmpfs mounts under /tmp (its work folder or environment, build/jobspec.py)
    that are full, or as good as: a build that failed there is built again on disk."""
    full = []
    try:
        with open(mounts) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return full
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[2] != "tmpfs" or not fields[1].startswith("/tmp/"):
            continue
        try:
            stats = os.statvfs(fields[1])
        except OSError:
            continue
        size = stats.f_blocks * stats.f_frsize
        if size and stats.f_bavail * stats.f_frsize < max(1 << 20, size // 100):
            full.append(fields[1])
    return full


def _cgroup_counter(paths, key):
    text = _read_first(paths) or ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


def _memory_limit():
    text = _read_first(("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"))
    if text and text.strip().isdigit():
        return f"{int(text) // (1 << 20)} MiB"
    return text.strip() if text else "unknown"


def _read_first(paths):
    for path in paths:
        try:
            with open(path) as handle:
                return handle.read().strip()
        except OSError:
            continue
    return None
