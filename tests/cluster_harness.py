"""A real build cluster on loopback for tests and benchmarks: `mirror-builder cluster scheduler`
and `mirror-builder worker` processes with mutual-TLS certificates made by `cluster certs`, each
worker with cache and work folders of its own (nothing shared with the coordinator but what the
artifact store serves)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _command(*args: str, settings: Path | None) -> list[str]:
    return [sys.executable, "-m", "mirror_builder", "--settings",
            str(settings or REPO / "settings.yaml"), *args]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}


@dataclass
class Member:
    name: str
    process: subprocess.Popen
    log: Path
    cache: Path | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while text not in " ".join(self.output().split()):
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n"
                                     f"{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {text!r} in {timeout} s:\n"
                                     f"{self.output()[-3000:]}")
            time.sleep(0.2)

    def worker_pid(self) -> int | None:
        """The Dask worker process the nanny (this member's process) keeps alive: its child
        started by multiprocessing's spawn (not the resource tracker, its other child)."""
        pids = []
        for children in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            try:
                pids += [int(p) for p in children.read_text().split()]
            except OSError:
                continue
        for pid in pids:
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        return None

    def running_jobs(self) -> set[str]:
        """The builds this worker has started (their job folders), by folder name."""
        return {p.name for p in (self.cache or Path("/nonexistent")).glob("cluster/work-*/builds/*")}

    def kill(self) -> None:
        """kill -9 the nanny and its worker (the whole process group), as a host going away."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    folder: Path
    certs: Path = field(init=False)
    scheduler: Member | None = None
    workers: dict[str, Member] = field(default_factory=dict)
    address: str = ""

    def __post_init__(self) -> None:
        self.certs = self.folder / "certs"

    def start_scheduler(self, allowed_failures: int = 2, options: tuple[str, ...] = ()) -> str:
        subprocess.run(_command("cluster", "certs", str(self.certs), "--member", "scheduler",
                                "--member", "coordinator", "--member", "worker", settings=None),
                       check=True, capture_output=True, env=_environment())
        address_file = self.folder / "scheduler.address"
        self.scheduler = self._spawn("scheduler", _command(
            "cluster", "scheduler", "--certs", str(self.certs), "--port", "0",
            "--allowed-failures", str(allowed_failures), "--address-file", str(address_file),
            *options, settings=None))
        self.scheduler.wait_for("Ctrl-C stops it", timeout=60)
        self.address = address_file.read_text().strip()
        return self.address

    def start_worker(self, name: str, *targets: str, settings: Path | None = None,
                     wait: bool = True, options: tuple[str, ...] = ()) -> Member:
        cache = self.folder / f"cache-{name}"
        args = ["worker", "--scheduler", self.address, "--certs", str(self.certs), "--name", name,
                "--host", "127.0.0.1", "--cache-dir", str(cache)]
        for target in targets:
            args += ["--target", target]
        args += options
        member = self._spawn(name, _command(*args, settings=settings))
        member.cache = cache
        self.workers[name] = member
        if wait:
            member.wait_for("Ctrl-C stops it")
        return member

    def _spawn(self, name: str, command: list[str]) -> Member:
        log = self.folder / f"{name}.log"
        handle = log.open("ab")
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=self.folder,
                                   env=_environment(), start_new_session=True)
        handle.close()
        return Member(name, process, log)

    def stop(self) -> None:
        for member in self.workers.values():
            member.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
