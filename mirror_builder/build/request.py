"""The unit of work: build one package version, as typed values that can go to another machine.

A BuildRequest holds files (by path and sha256) and names only: the prepared source and the sdist
it came from, the patches, the exact wheels of the build environment, the image, the limits. A
BuildResult is files and facts back: the wheel, the freeze, the log, the timings, or the
requirements the backend still wants. An Executor runs them; today the only one is local podman
(build/builder.py), and nothing else in the engine knows where a build runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol

from mirror_builder.config.settings import BuildSettings
from mirror_builder.layout import IndexLayout
from mirror_builder.prepare.buildsystem import BuildSystem
from mirror_builder.sandbox.imagenames import ImageRef

SCHEMA = "mirror-builder/build-request/v1"


@dataclass(frozen=True)
class FileRef:
    """A file, named by where it is here and by its content."""

    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class SourceInputs:
    """What is built: the prepared tree (unpacked, patched, vendored) and what it came from."""

    name: str
    version: str
    sdist: FileRef
    tree: Path
    patches: tuple[FileRef, ...] = ()
    # The project's folder inside the tree (overrides' build_dir), "" for the root.
    project_dir: str = ""
    # The newest file time in the sdist, when its unpacking read it (else read from the sdist).
    source_date_epoch: int | None = None


@dataclass(frozen=True)
class BuildEnvironment:
    """The exact wheels installed for the backend, and what the backend is told."""

    wheels: tuple[FileRef, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    config_settings: Mapping[str, str] = field(default_factory=dict)
    jobs: int = 2


@dataclass(frozen=True)
class Runtime:
    """Where and within which limits a build runs."""

    image: ImageRef
    limits: BuildSettings
    target: str = ""
    cpus: float | None = None


@dataclass(frozen=True)
class Variation:
    """What a verifying rebuild changes that should not change the wheel (the reprotest idea):
    where the tree is built inside the container, the host name, the order of the environment
    variables. The CPU count is varied with Runtime.cpus and BuildEnvironment.jobs."""

    work_dir: str          # instead of the driver's fixed /tmp/mb-work
    hostname: str
    reverse_environment: bool = True


@dataclass(frozen=True)
class SmokePlan:
    """Smoke-test the wheel in its build container, right after the build, when every wheel of
    its install closure is at hand when the build starts: one container start less. The host
    takes only a pass from there (build/request.py's SmokeResult, container "build"); anything
    else is tested again in a smoke-test container of its own."""

    closure: tuple[FileRef, ...]  # the install closure's wheels, by the run's resolution
    imports: tuple[str, ...] | None = None  # None: the built wheel's top-level modules
    # The closure is not all built yet: the container waits after the hand-over, without a
    # build slot, and the host gives it the closure when the run has built it (ClosureLater),
    # or tells it to skip the test. Only for an executor that can (closure_after_start).
    wait: bool = False


# What the host gives a build container that waits for its closure: called after the hand-over
# with nothing, it returns when the closure is built (its wheels, and the callable that frees
# what the test holds, called when the test ends), or None when the run will not build it.
ClosureLater = Callable[[], "tuple[tuple[FileRef, ...], Callable[[], None]] | None"]


@dataclass(frozen=True)
class BuildRequest:
    source: SourceInputs
    build_system: BuildSystem
    env: BuildEnvironment
    runtime: Runtime
    log_path: Path  # the build's output is appended here
    chain: tuple[str, ...] = ()  # who asked for it, for error messages
    variation: Variation | None = None  # only when verifying a published wheel
    smoke: SmokePlan | None = None
    # Whether the run has other packages under way, whose builds may follow this one: worth
    # starting a container for the next build while this one runs (build/warm.py).
    more_to_come: bool = True

    @property
    def label(self) -> str:
        return f"{self.source.name}=={self.source.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **_jsonable(asdict(self))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildRequest:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a build request of schema {SCHEMA}: {data.get('schema')!r}")
        source = dict(data["source"])
        source["sdist"] = _file(source["sdist"])
        source["tree"] = Path(source["tree"])
        source["patches"] = tuple(_file(p) for p in source["patches"])
        env = dict(data["env"])
        env["wheels"] = tuple(_file(w) for w in env["wheels"])
        runtime = dict(data["runtime"])
        runtime["image"] = ImageRef(**{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in runtime["image"].items()})
        runtime["limits"] = BuildSettings(**runtime["limits"])
        system = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in data["build_system"].items()}
        smoke = data.get("smoke")
        if smoke:
            imports = smoke.get("imports")
            smoke = SmokePlan(tuple(_file(w) for w in smoke["closure"]),
                              None if imports is None else tuple(imports),
                              wait=bool(smoke.get("wait", False)))
        return cls(source=SourceInputs(**source), build_system=BuildSystem(**system),
                   env=BuildEnvironment(**env), runtime=Runtime(**runtime),
                   log_path=Path(data["log_path"]), chain=tuple(data["chain"]),
                   variation=Variation(**data["variation"]) if data.get("variation") else None,
                   smoke=smoke or None, more_to_come=bool(data.get("more_to_come", True)))


@dataclass(frozen=True)
class BuildResult:
    status: Literal["built", "needs"]  # needs: the backend asked for more build requirements
    wheel: Path | None
    backend_requires: tuple[str, ...]
    missing: tuple[str, ...]
    freeze: str
    log_path: Path
    command: tuple[str, ...]
    started_at: str
    ended_at: str
    seconds: float
    container_seconds: float
    timings: Mapping[str, float]
    environment: Mapping[str, str] = field(default_factory=dict)
    # The build container's user namespace: {"uid_map": ..., "gid_map": ...}.
    user_namespace: Mapping[str, str] = field(default_factory=dict)
    # The build host, when not this machine: the worker's name, id, host, kernel, podman and
    # the image id it used (cluster/buildhost.py).
    worker: Mapping[str, str] = field(default_factory=dict)
    # The Debian packages whose libraries the wheel's ELF files link to, as the image has
    # them: ({soname, path, package, version, architecture, distro}, ...), for its SBOM.
    linked: tuple[Mapping[str, str], ...] = ()
    # The build's folders in memory, as "mount point (size)": its work folder, or its
    # environment alone (build/jobspec.py); none: all on disk.
    in_memory: tuple[str, ...] = ()
    # The smoke test run in the build container (BuildRequest.smoke), whatever its outcome; a
    # Future of it (SmokeResult or None) while the container, which handed the wheel over
    # first, still runs it (build/handover.py).
    smoke: SmokeResult | Future | None = None
    # With a smoke Future: done once that test no longer needs its build slot (its result is
    # written; the container is ending), a little before the result can be read.
    tested: Future | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with the smoke test's result (waited for if it is still running)."""
        smoke = self.smoke.result() if isinstance(self.smoke, Future) else self.smoke
        values = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in ("smoke", "tested")}
        return _jsonable({**values, "smoke": asdict(smoke) if smoke is not None else None})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildResult:
        values = dict(data)
        values["wheel"] = Path(values["wheel"]) if values["wheel"] else None
        values["log_path"] = Path(values["log_path"])
        for key in ("backend_requires", "missing", "command", "linked", "in_memory"):
            values[key] = tuple(values.get(key, ()))
        if values.get("smoke"):
            smoke = dict(values["smoke"])
            if smoke.get("container", "smoke-test") not in SMOKE_HOW:
                raise ValueError(f"a smoke test ran in no known container: {smoke['container']!r}")
            values["smoke"] = SmokeResult(**{**smoke, "imports": dict(smoke["imports"]),
                                             "freeze": tuple(smoke["freeze"])})
        return cls(**values)


@dataclass(frozen=True)
class RepairRequest:
    """Repair a platform wheel to a manylinux tag with auditwheel, from our own tool wheels."""

    wheel: Path
    tools: tuple[Path, ...]
    runtime: Runtime
    log_path: Path
    label: str


@dataclass(frozen=True)
class RepairResult:
    wheel: Path
    record: Mapping[str, Any]  # what the build record says about the repair


@dataclass(frozen=True)
class SmokeTest:
    wheel: Path  # staged, exactly the file that will be published
    imports: tuple[str, ...]


# What each kind of smoke test does, in the words its record carries.
SMOKE_HOW = {
    "smoke-test": "installed with its install closure from our index alone (read-only, no "
                  "network) into a fresh venv, then its top-level modules imported",
    "build": "in its build container, once the build was done: the built wheel (before the host "
             "added its build record) installed with its install closure, our wheels only "
             "(read-only, no network), into a fresh venv, then its top-level modules imported",
}


@dataclass(frozen=True)
class SmokeResult:
    wheel: str
    status: Literal["passed", "failed", "skipped"]
    imports: dict[str, str | None] = field(default_factory=dict)
    freeze: tuple[str, ...] = ()
    error: str = ""
    seconds: float = 0.0
    image: str = ""
    container: Literal["smoke-test", "build"] = "smoke-test"  # where it ran (SMOKE_HOW)

    def to_dict(self) -> dict:
        return {"status": self.status, "image": self.image, "imports": dict(self.imports),
                "installed": list(self.freeze), "error": self.error, "seconds": self.seconds,
                "container": self.container, "how": SMOKE_HOW[self.container]}


@dataclass(frozen=True)
class SmokeRequest:
    """Install wheels from our index alone (plus the wheels staged in this run), offline, into
    a fresh venv, and import them: one container start for several tests."""

    image: ImageRef
    index: IndexLayout  # mounted read-only
    staged: tuple[Path, ...]
    tests: tuple[SmokeTest, ...]
    limits: BuildSettings
    log_path: Path


class Executor(Protocol):
    """Runs units of work somewhere isolated. Implementations hold no state of a run."""

    # Whether build() takes closure_later: a build container that waits for its closure.
    closure_after_start: bool

    def build(self, request: BuildRequest,
              closure_later: ClosureLater | None = None) -> BuildResult: ...

    def repair(self, request: RepairRequest) -> RepairResult: ...

    def smoke_test(self, request: SmokeRequest) -> Mapping[str, SmokeResult]: ...

    def workers_summary(self) -> list[tuple[str, str, int, float]]:
        """Per build host other than this machine: (worker, host, tasks, busy seconds)."""
        ...

    def capacity(self) -> int | None:
        """Builds it can run at once (a cluster's slots for the target), or None: as many as
        this machine's cores and memory allow."""
        ...


def _file(data: Mapping[str, Any]) -> FileRef:
    return FileRef(Path(data["path"]), data["sha256"])


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    return value
