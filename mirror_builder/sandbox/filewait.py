"""Waiting for a file to appear in a folder, without polling. Runs INSIDE a container (copied in as
/mb/lib/mb_filewait.py; stdlib only) and on the host (build/handover.py waits so for the driver's
hand-over and test result).

A build container that has handed its wheel over waits for the host's answer (/job/taken); one
that waits for its closure waits minutes. Polling every 20 ms cost 2 ms of CPU a second in each
such container, and a big tree has a dozen of them waiting at once. inotify (through ctypes, as
the image's python has no binding) wakes the driver when the host renames the answer into the
folder; the folder is a bind mount of the host's, and the kernel reports changes to the folder
whichever mount they came through. Where inotify cannot be had, it polls as before.
"""

import ctypes
import os
import select
import time

IN_CREATE = 0x100
IN_MOVED_TO = 0x80
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000
# Looked at again this often even when nothing was heard, should an event ever be missed.
RECHECK_SECONDS = 1.0


def wait_for_file(path, deadline, poll=lambda waited: 0.002 if waited < 0.5 else 0.02,
                  present=None, stop=None, recheck=RECHECK_SECONDS):
    """Until path is there (present(), by default: it exists) or time.monotonic() passes
    deadline, or stop() says to give up (asked when woken, at least every recheck seconds);
    whether it is there."""
    if present is None:
        def present():
            return os.path.exists(path)
    started = time.monotonic()
    fd = _inotify_on(os.path.dirname(path) or ".")
    try:
        while not present():
            now = time.monotonic()
            if now >= deadline or (stop is not None and stop()):
                return False
            if fd is None:
                time.sleep(min(deadline - now, poll(now - started)))
                continue
            readable, _, _ = select.select([fd], [], [], min(deadline - now, recheck))
            if readable:
                _drain(fd)
        return True
    finally:
        if fd is not None:
            os.close(fd)


def _inotify_on(folder):
    """An inotify descriptor watching folder for new names, or None where there is none."""
    try:
        # The C library python itself runs on: ctypes.util.find_library would run ldconfig in
        # a process of its own on every wait (the host waits so for every build).
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK)
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(folder), IN_CREATE | IN_MOVED_TO) < 0:
            os.close(fd)
            return None
        return fd
    except (OSError, AttributeError):
        return None


def _drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
