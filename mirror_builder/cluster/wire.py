"""What travels through the scheduler: plain dicts (JSON and msgpack types only) naming files
by sha256, never the files themselves, and never pickled objects a hostile worker could make
run code in the coordinator.

    RemoteBuild    coordinator -> worker: the BuildRequest, the prepared tree as a tar blob,
                   where the artifact store is
    RemoteRepair   coordinator -> worker: a wheel and the repair tools' wheels, by digest
    RemoteSmoke    coordinator -> worker: the index (every page and file, by digest), the
                   wheels staged in this run, the tests
    RemoteVendor   coordinator -> worker: a prepared tree whose Rust crates are to be vendored
                   (the one step with network); the vendored tree comes back as a tar
    RemoteOutcome  worker -> coordinator: built / needs / repaired / tested / failed / refused,
                   the wheel's and the log's digests, and which host ran it
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import tarfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mirror_builder import DATA_DIR, __version__
from mirror_builder.build.request import BuildRequest, BuildResult, Runtime, SmokeResult
from mirror_builder.config.settings import BuildSettings
from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.buildcache.store import is_digest
from mirror_builder.errors import MirrorBuilderError

BUILD_SCHEMA = "mirror-builder/remote-build/v1"
REPAIR_SCHEMA = "mirror-builder/remote-repair/v1"
SMOKE_SCHEMA = "mirror-builder/remote-smoke/v1"
VENDOR_SCHEMA = "mirror-builder/remote-vendor/v1"
OUTCOME_SCHEMA = "mirror-builder/remote-outcome/v1"
STATUSES = ("built", "needs", "repaired", "tested", "vendored", "failed", "refused")
WITH_RESULT = ("built", "needs", "repaired", "tested", "vendored")
INDEX_FOLDERS = ("simple", "files")
TESTS_PREFIX = "tests-"


class WireError(MirrorBuilderError):
    """A message between coordinator and worker that is not what this version sends."""


@dataclass(frozen=True)
class RemoteBuild:
    request: BuildRequest
    tree_sha256: str  # the prepared tree, packed by pack_tree
    store: str  # the artifact store's https:// URL
    version: str = ""  # code_version() of the sender

    def to_dict(self) -> dict[str, Any]:
        return {"schema": BUILD_SCHEMA, "version": self.version or code_version(),
                "store": self.store,
                "tree": self.tree_sha256, "request": self.request.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemoteBuild:
        _check_schema(data, BUILD_SCHEMA)
        if not is_digest(data.get("tree")):
            raise WireError("the build's tree is not named by a sha256 digest")
        try:
            request = BuildRequest.from_dict(data["request"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"not a build request: {exc}") from None
        return cls(request, data["tree"], str(data["store"]), str(data["version"]))


@dataclass(frozen=True)
class RemoteOutcome:
    status: str  # one of STATUSES
    worker: Mapping[str, str] = field(default_factory=dict)
    result: Mapping[str, Any] | None = None  # BuildResult.to_dict(), for built and needs
    wheel: tuple[str, str] | None = None  # (file name, sha256)
    log_sha256: str | None = None
    error: str = ""  # for failed and refused
    tree_sha256: str | None = None  # for vendored: the tree with its crates, packed

    def to_dict(self) -> dict[str, Any]:
        return {"schema": OUTCOME_SCHEMA, "version": code_version(), "status": self.status,
                "worker": dict(self.worker), "result": self.result,
                "wheel": list(self.wheel) if self.wheel else None,
                "log": self.log_sha256, "error": self.error, "tree": self.tree_sha256}

    @classmethod
    def from_dict(cls, data: object) -> RemoteOutcome:
        if not isinstance(data, Mapping):
            raise WireError(f"a worker answered with {type(data).__name__}, not an outcome")
        _check_schema(data, OUTCOME_SCHEMA)
        status = data.get("status")
        if status not in STATUSES:
            raise WireError(f"a worker answered with status {status!r}")
        wheel = data.get("wheel")
        if wheel is not None and not (isinstance(wheel, list) and len(wheel) == 2
                                      and isinstance(wheel[0], str) and is_digest(wheel[1])):
            raise WireError("a worker named its wheel without a sha256 digest")
        log = data.get("log")
        if log is not None and not is_digest(log):
            raise WireError("a worker named its log without a sha256 digest")
        worker = data.get("worker") or {}
        if not isinstance(worker, Mapping):
            raise WireError("a worker described itself with something other than a mapping")
        result = data.get("result")
        if status in WITH_RESULT and not isinstance(result, Mapping):
            raise WireError(f"a worker answered {status} without a build result")
        tree = data.get("tree")
        if (tree is not None or status == "vendored") and not is_digest(tree):
            raise WireError("a worker named its tree without a sha256 digest")
        return cls(status, {str(k): str(v) for k, v in worker.items()}, result,
                   tuple(wheel) if wheel else None, log, str(data.get("error", "")), tree)

    def build_result(self, wheel: Path | None, log_path: Path) -> BuildResult:
        values = dict(self.result or {})
        values["wheel"], values["log_path"] = (str(wheel) if wheel else None), str(log_path)
        values["worker"] = dict(self.worker)
        try:
            return BuildResult.from_dict(values)
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"a worker's build result is malformed: {exc}") from None


@dataclass(frozen=True)
class RemoteRepair:
    """Repair wheel (file name, sha256) to a manylinux tag with the tools' wheels."""

    wheel: tuple[str, str]
    tools: tuple[tuple[str, str], ...]
    runtime: Runtime
    label: str
    store: str

    def to_dict(self) -> dict[str, Any]:
        return {"schema": REPAIR_SCHEMA, "version": code_version(), "store": self.store,
                "wheel": list(self.wheel), "tools": [list(t) for t in self.tools],
                "runtime": runtime_to_dict(self.runtime), "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemoteRepair:
        _check_schema(data, REPAIR_SCHEMA)
        try:
            return cls(file_ref(data["wheel"]), tuple(file_ref(t) for t in data["tools"]),
                       runtime_from_dict(data["runtime"]), str(data["label"]),
                       str(data["store"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"not a repair request: {exc}") from None


@dataclass(frozen=True)
class RemoteSmoke:
    """Smoke tests against a copy of the index: its files as (path under the index, sha256),
    the staged wheels as (file name, sha256), and per test (wheel's file name, imports)."""

    image: ImageRef
    limits: BuildSettings
    index: tuple[tuple[str, str], ...]
    staged: tuple[tuple[str, str], ...]
    tests: tuple[tuple[str, tuple[str, ...]], ...]
    store: str

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SMOKE_SCHEMA, "version": code_version(), "store": self.store,
                "image": _plain(asdict(self.image)), "limits": asdict(self.limits),
                "index": [list(f) for f in self.index], "staged": [list(f) for f in self.staged],
                "tests": [[name, list(imports)] for name, imports in self.tests]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemoteSmoke:
        _check_schema(data, SMOKE_SCHEMA)
        try:
            index = tuple(index_ref(f) for f in data["index"])
            staged = tuple(file_ref(f) for f in data["staged"])
            tests = tuple((_file_name(name), tuple(str(i) for i in imports))
                          for name, imports in data["tests"])
            return cls(image_from_dict(data["image"]), BuildSettings(**data["limits"]), index,
                       staged, tests, str(data["store"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"not a smoke-test request: {exc}") from None


@dataclass(frozen=True)
class RemoteVendor:
    """Vendor the crates of manifests (paths in the tree; None: what the backend compiles)."""

    tree_sha256: str
    image: ImageRef
    manifests: tuple[str, ...] | None
    label: str
    store: str

    def to_dict(self) -> dict[str, Any]:
        return {"schema": VENDOR_SCHEMA, "version": code_version(), "store": self.store,
                "tree": self.tree_sha256, "image": _plain(asdict(self.image)),
                "manifests": None if self.manifests is None else list(self.manifests),
                "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemoteVendor:
        _check_schema(data, VENDOR_SCHEMA)
        if not is_digest(data.get("tree")):
            raise WireError("the tree to vendor is not named by a sha256 digest")
        try:
            manifests = data["manifests"]
            if manifests is not None:
                manifests = tuple(_tree_path(m) for m in manifests)
            return cls(data["tree"], image_from_dict(data["image"]), manifests,
                       str(data["label"]), str(data["store"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"not a vendoring request: {exc}") from None


def _tree_path(value: object) -> str:
    """A relative path inside a tree, no climbing out."""
    if not isinstance(value, str) or value.startswith("/") or \
            any(p in ("", ".", "..") or "\0" in p for p in value.split("/")):
        raise WireError(f"{value!r} is not a path inside the tree")
    return value


def smoke_results_to_dict(results: Mapping[str, SmokeResult]) -> dict[str, Any]:
    return {name: _plain(asdict(result)) for name, result in results.items()}


def smoke_results_from_dict(data: Mapping[str, Any], wanted: set[str]) -> dict[str, SmokeResult]:
    """The worker's verdicts, for exactly the wheels that were to be tested."""
    if set(data) != wanted:
        raise WireError("a worker answered for other wheels than it was asked to test")
    results = {}
    for name, values in data.items():
        try:
            result = SmokeResult(**{**values, "imports": dict(values["imports"]),
                                    "freeze": tuple(values["freeze"])})
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"a worker's smoke-test result is malformed: {exc}") from None
        if result.status not in ("passed", "failed", "skipped") or result.wheel != name:
            raise WireError(f"a worker's smoke-test result for {name} is malformed")
        results[name] = result
    return results


def runtime_to_dict(runtime: Runtime) -> dict[str, Any]:
    return _plain(asdict(runtime))


def runtime_from_dict(data: Mapping[str, Any]) -> Runtime:
    return Runtime(image=image_from_dict(data["image"]), limits=BuildSettings(**data["limits"]),
                   target=str(data["target"]), cpus=data.get("cpus"))


def image_from_dict(data: Mapping[str, Any]) -> ImageRef:
    return ImageRef(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def file_ref(value: object) -> tuple[str, str]:
    """(file name, sha256), a plain file name only."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and is_digest(value[1])):
        raise WireError(f"{value!r} does not name a file by its sha256")
    return _file_name(value[0]), value[1]


def index_ref(value: object) -> tuple[str, str]:
    """(path under the index, sha256): under simple/ or files/, no climbing out."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and is_digest(value[1])
            and isinstance(value[0], str)):
        raise WireError(f"{value!r} does not name an index file by its sha256")
    parts = value[0].split("/")
    if parts[0] not in INDEX_FOLDERS or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise WireError(f"{value[0]!r} is not a path inside an index")
    return value[0], value[1]


def _file_name(name: object) -> str:
    if not isinstance(name, str) or not name or "/" in name or name.startswith(".") \
            or "\0" in name:
        raise WireError(f"{name!r} is not a file name")
    return name


def _plain(value: Any) -> Any:
    """asdict() output as JSON/msgpack types (tuples as lists, paths as strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def image_resource(image) -> str:
    """The Dask resource a worker advertises for a target's image, named by its content (the
    target, its Containerfile, its Debian packages at their versions) and by our code: a build
    asks for it, so the scheduler sends it only to hosts whose image is the coordinator's and
    that run the same mirror-builder. Image ids differ between hosts that built the same image,
    so they are not part of it."""
    digest = hashlib.sha256("\n".join([code_version(), image.target,
                                        image.containerfile_sha256,
                                        *sorted(image.system_packages)]).encode())
    return f"image-{image.target}-{digest.hexdigest()[:16]}"


def tests_resource(image) -> str:
    """The resource smoke tests ask for: the same image, but slots of their own, so that a
    smoke test never waits behind builds (locally they run beside builds, too)."""
    return TESTS_PREFIX + image_resource(image)


def target_resource(target: str) -> str:
    return f"target-{target}"


def _check_schema(data: Mapping[str, Any], schema: str) -> None:
    if data.get("schema") != schema:
        raise WireError(f"expected a {schema} message, got {data.get('schema')!r}")
    if data.get("version") != code_version():
        raise WireError(f"the other side runs mirror-builder {data.get('version')}, this one "
                        f"{code_version()}: run the same code on the coordinator and workers")


@functools.cache
def code_version() -> str:
    """This install's version and a digest of its code: a coordinator and a worker with the
    same version number but other code would not build the same way."""
    digest = hashlib.sha256()
    package_dir = DATA_DIR.parent
    for path in sorted(package_dir.rglob("*")):
        if path.suffix in (".py", ".json", ".conf") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def pack_tree(tree: Path, dest: Path) -> Path:
    """The tree as an uncompressed tar, the same bytes for the same tree: sorted members, no
    owners. Times and modes are kept (builds can depend on them). Uncompressed: trees cross a
    LAN or loopback, where gzip costs more time than it saves."""
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk_sorted(tree):
            tar.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False,
                    filter=clean)
    return dest


def _walk_sorted(root: Path):
    for current, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(current)
        for name in sorted(dirs + files):
            path = here / name
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                yield path


def unpack_tree(archive: Path, dest: Path) -> Path:
    """Unpack a pack_tree archive into dest with the standard library's data filter: nothing
    outside dest, no devices, no setuid bits, whatever the archive says."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise WireError(f"the prepared tree could not be unpacked: {exc}") from None
    return dest
