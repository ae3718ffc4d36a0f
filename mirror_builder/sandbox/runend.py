"""The end of a container run: its output copied into its log (live once it has run a while,
then whole), its exit waited for without polling podman, and its final state read back. Works
on podman-py's container objects; imports nothing of podman's itself."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mirror_builder.sandbox.exitwatch import wait_for_exit

# Seconds a container runs before its output is copied into its log as it comes.
LIVE_LOG_AFTER = 1.0


class LiveLog:
    """Appends a container's output to its log while it runs; finish() writes the final copy."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done = False
        self.lock = threading.Lock()

    def follow(self, container) -> None:
        try:
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                with self.lock:
                    if self.done:
                        return
                    with self.path.open("ab") as out:
                        out.write(chunk if isinstance(chunk, bytes) else str(chunk).encode())
        except Exception:  # the live copy is a convenience; the final copy is what counts
            return

    def finish(self, header: int, output: bytes) -> None:
        with self.lock:
            self.done = True
            with self.path.open("r+b") if self.path.exists() else self.path.open("wb") as out:
                out.seek(header)
                out.truncate()
                out.write(output)


def wait_for_the_end(container, live: LiveLog, header: int,
                      steps: dict[str, float]) -> tuple[int, bool, dict]:
    """Wait for a started container to exit, its output copied into its log live and then
    whole; its exit code, whether the OOM killer ended it, and its user namespace's id maps."""
    # A live copy of the output for `tail -f`, once the container has run for a while: podman
    # ends a follow stream only some time after the container has gone, and the service's
    # shutdown waits for it (0.3 s at the end of every run when each container had one).
    following = threading.Timer(LIVE_LOG_AFTER, live.follow, args=(container,))
    following.daemon = True
    following.start()
    # The exit noticed within 10 ms: podman's default is to poll every 250 ms, which was a
    # quarter of a second on every build. Podman is asked once the process has ended
    # (sandbox/exitwatch.py), not every 10 ms while it runs.
    before = time.monotonic()
    try:
        wait_for_exit((container.attrs.get("State") or {}).get("Pid"), container.id)
        exit_code = container.wait(interval="10ms")
    finally:
        following.cancel()
    steps["wait"] = time.monotonic() - before
    before = time.monotonic()
    if isinstance(exit_code, dict):
        exit_code = int(exit_code.get("StatusCode", 1))
    # The complete output, in one read, replaces the live copy.
    output = b"".join(c if isinstance(c, bytes) else str(c).encode()
                      for c in container.logs(stream=False, stdout=True, stderr=True))
    live.finish(header, output)
    container.reload()
    oom_killed = bool(container.attrs.get("State", {}).get("OOMKilled"))
    id_mappings = (container.attrs.get("HostConfig") or {}).get("IDMappings") or {}
    steps["finish"] = time.monotonic() - before
    return exit_code, oom_killed, id_mappings
