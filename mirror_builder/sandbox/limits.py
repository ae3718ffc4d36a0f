"""Runs INSIDE a build container, beside the driver (copied in as /mb/lib/mb_limits.py; stdlib
only): what the container's cgroup says about the limits a failed build ran into, and whether
its folders in memory had a hand in it."""

import os

OOM_EVENTS = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")


def limits_hit():
    """What the container's cgroup says about its limits: forks refused by the process limit
    and processes the OOM killer ended. cgroup v1 and v2 lay the counters out differently."""
    found = []
    forks = _cgroup_counter(("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events"), "max")
    if forks:
        limit = _read_first(("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"))
        found.append(f"the process limit ({limit}) refused {forks} new process(es)")
    kills = _cgroup_counter(OOM_EVENTS, "oom_kill")
    if kills:
        found.append(f"the memory limit ({_memory_limit()}) killed {kills} process(es)")
    return found


def why_retry_on_disk(mounts="/proc/self/mounts"):
    """Why a failed build done in memory (tmpfs under /tmp, build/jobspec.py) should be built
    again on disk, or None: it filled one, or the OOM killer struck while its files took memory
    (they count against the limit). A memory-hungry build fails on disk too, once more."""
    usage = tmpfs_usage(mounts)
    full = [path for path, used, size in usage if size - used < max(1 << 20, size // 100)]
    if full:
        return f"the build filled its folder in memory ({', '.join(full)})"
    in_memory = [(path, used) for path, used, _ in usage if used >= 1 << 20]
    if in_memory and _cgroup_counter(OOM_EVENTS, "oom_kill"):
        held = sum(used for _, used in in_memory) >> 20
        return (f"the memory limit killed a process while {held} MiB of the build's files were "
                f"in memory ({', '.join(path for path, _ in in_memory)})")
    return None


def tmpfs_usage(mounts="/proc/self/mounts"):
    """(mount point, bytes used, size) of each tmpfs under /tmp."""
    usage = []
    try:
        with open(mounts) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return usage
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[2] != "tmpfs" or not fields[1].startswith("/tmp/"):
            continue
        try:
            stats = os.statvfs(fields[1])
        except OSError:
            continue
        size = stats.f_blocks * stats.f_frsize
        if size:
            usage.append((fields[1], size - stats.f_bfree * stats.f_frsize, size))
    return usage


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
