"""The one place that names the files and folders under an output directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# Every build variant but the default one is a whole output of its own under this folder.
VARIANTS_FOLDER = "variants"


def variant_output(output: Path, variant: str, default_variant: str) -> Path:
    """Where a build variant's output is: the default variant's is OUTPUT itself (so outputs
    made before variants existed, and their index URLs, stay as they were); every other's is
    OUTPUT/variants/<variant>/, a complete output of its own (simple/, files/, records/, ...),
    which a static host serves at /variants/<variant>/simple/ just as it lies on disk. Every
    command finds a variant's output through this function."""
    return output if variant == default_variant else output / VARIANTS_FOLDER / variant


@dataclass(frozen=True)
class IndexLayout:
    """A static PEP 503/691 index: the output itself (wheels) or its source archive (sdists).

        simple/index.html, index.json           the project list
        simple/<project>/index.html, index.json one page per project
        files/<project>/<file>                  the files, each wheel with <wheel>.metadata
                                                and <wheel>.provenance
        .index.lock, .writing.json              the writers' lock and their intent note
    """

    root: Path

    @property
    def simple(self) -> Path:
        return self.root / "simple"

    @property
    def files(self) -> Path:
        return self.root / "files"

    def page_folder(self, project: str | None = None) -> Path:
        """simple/ for the project list, simple/<project>/ for one project's pages."""
        return self.simple if project is None else self.simple / canonicalize_name(project)

    def json_page(self, project: str | None = None) -> Path:
        """index.json (PEP 691) of the project list, or of one project."""
        return self.page_folder(project) / "index.json"

    def html_page(self, project: str | None = None) -> Path:
        """index.html (PEP 503) of the project list, or of one project."""
        return self.page_folder(project) / "index.html"

    def project_files(self, project: str) -> Path:
        """files/<project>/: the folder of one project's files."""
        return self.files / canonicalize_name(project)

    def file(self, project: str, filename: str) -> Path:
        return self.project_files(project) / filename

    def metadata(self, project: str, wheel: str) -> Path:
        """files/<project>/<wheel>.metadata: the wheel's METADATA (PEP 658)."""
        return self.project_files(project) / f"{wheel}.metadata"

    def provenance(self, project: str, wheel: str) -> Path:
        """files/<project>/<wheel>.provenance: the wheel's signed in-toto statement, a copy of
        the one beside its record, where the project page's provenance URL points (PEP 740's
        URL shape; the content is our DSSE envelope, not PEP 740's Sigstore bundle)."""
        return self.project_files(project) / f"{wheel}.provenance"

    @property
    def index_lock(self) -> Path:
        return self.root / ".index.lock"

    @property
    def index_intent(self) -> Path:
        """The note of pages a writer is about to write, finished by the next writer."""
        return self.root / ".writing.json"


@dataclass(frozen=True)
class RecordsLayout:
    """Build records, one folder per project: records/ and rejected/records/.

        <project>/<wheel>.build.json    the build record
        <project>/<wheel>.freeze.txt    the build environment's freeze
        <project>/<wheel>.log           the build log
        <project>/<wheel>.intoto.json   the in-toto statement (SLSA provenance v1)
        <project>/<wheel>.verification.json  the last `verify`: a statement (SLSA
                                             verification summary v1)
        <project>/<wheel>.diffoscope.txt     what differed, when the last `verify` differed
        <project>/<wheel>.verify.log         the log of the last `verify`'s rebuild
    """

    root: Path

    def folder(self, project: str) -> Path:
        return self.root / canonicalize_name(project)

    def record(self, project: str, wheel: str) -> Path:
        return self.folder(project) / f"{wheel}.build.json"

    def freeze(self, project: str, wheel: str) -> Path:
        return self.folder(project) / f"{wheel}.freeze.txt"

    def log(self, project: str, wheel: str) -> Path:
        return self.folder(project) / f"{wheel}.log"

    def slsa(self, project: str, wheel: str) -> Path:
        return self.folder(project) / f"{wheel}.intoto.json"

    def verification(self, project: str, wheel: str) -> Path:
        return self.folder(project) / f"{wheel}.verification.json"

    def differences(self, project: str, wheel: str) -> Path:
        return self.folder(project) / f"{wheel}.diffoscope.txt"

    def verify_log(self, project: str, wheel: str) -> Path:
        return self.folder(project) / f"{wheel}.verify.log"


@dataclass(frozen=True)
class OutputLayout(IndexLayout):
    """An output directory: a wheel index (see IndexLayout) with everything else beside it.

        simple/, files/                     the wheels-only index users install from
        sources/simple/, sources/files/     the source archive, itself an index (of sdists)
        from-source/simple/, .../files/     the wheels built from source alone (gap-fill runs)
        records/<project>/<wheel>.*         build records (see RecordsLayout)
        rejected/records/<project>/...      records of wheels that failed their smoke test
        logs/<name>-<version>.log           logs of failed builds
        jobs/history.jsonl                  the audit log of build jobs
        signing-key.pub, keys/<keyid>.pub   the key that signs the statements, and every
                                            earlier one
        review/queue.json, waiting.json     packages awaiting review, jobs waiting for them
        rebuild-numbers.json, .lock         the rebuild numbers handed out, and their lock
        build-order.<target>.json           bottom-up build order of one target; build-order.json
                                            is a copy of the run's first target's
        graph.<target>.json, graph.json     the dependency graph, likewise
        .mirror-builder.lock                held by the one command writing this directory
        variants/<variant>/                 another build variant's output, laid out the same
                                            (see variant_output)
    """

    @classmethod
    def of(cls, output: OutputLayout | Path | str) -> OutputLayout:
        """The layout itself, or the layout of the output directory at that path."""
        return output if isinstance(output, OutputLayout) else cls(Path(output))

    @property
    def sources(self) -> IndexLayout:
        return IndexLayout(self.root / "sources")

    @property
    def from_source(self) -> IndexLayout:
        """from-source/: the view of the index with only the wheels built from source (what a
        gap-fill run did not take from upstream), an index of its own."""
        return IndexLayout(self.root / "from-source")

    @property
    def records(self) -> RecordsLayout:
        return RecordsLayout(self.root / "records")

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def rejected_records(self) -> RecordsLayout:
        return RecordsLayout(self.rejected / "records")

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def failed_build_log(self, name: str, version: Version | str) -> Path:
        """logs/<name>-<version>.log: where a build's log is written, kept if the build fails."""
        return self.logs / f"{name}-{version}.log"

    def stage_one_log(self, name: str, version: Version | str) -> Path:
        """logs/<name>-<version>-stage1.log: the log of a build cycle's stage-1 build, which is
        never published but named in the full build's record."""
        return self.logs / f"{name}-{version}-stage1.log"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def find_links(self) -> Path:
        """find-links.html: every wheel on one flat page, for pip --find-links."""
        return self.root / "find-links.html"

    @property
    def public_key(self) -> Path:
        """signing-key.pub: the public key of the key that signs this output's statements."""
        return self.root / "signing-key.pub"

    def key_by_id(self, keyid: str) -> Path:
        """keys/<keyid>.pub: every key that signed statements here, so older statements still
        verify after the key is replaced."""
        return self.root / "keys" / f"{keyid}.pub"

    @property
    def job_history(self) -> Path:
        return self.jobs / "history.jsonl"

    @property
    def review(self) -> Path:
        return self.root / "review"

    @property
    def review_queue(self) -> Path:
        return self.review / "queue.json"

    @property
    def review_waiting(self) -> Path:
        return self.review / "waiting.json"

    @property
    def rebuild_numbers(self) -> Path:
        return self.root / "rebuild-numbers.json"

    @property
    def rebuild_numbers_lock(self) -> Path:
        return self.root / "rebuild-numbers.lock"

    def build_order(self, target: str | None = None) -> Path:
        """build-order.json, or build-order.<target>.json for one target."""
        return self.root / (f"build-order.{target}.json" if target else "build-order.json")

    def graph(self, target: str | None = None) -> Path:
        """graph.json, or graph.<target>.json for one target."""
        return self.root / (f"graph.{target}.json" if target else "graph.json")

    @property
    def output_lock(self) -> Path:
        return self.root / ".mirror-builder.lock"

    @property
    def variants(self) -> Path:
        """variants/: the other build variants' outputs, when this is the default variant's."""
        return self.root / VARIANTS_FOLDER


def failed_build_logs(layout: OutputLayout, name: str) -> list[Path]:
    """The logs of a project's failed builds (OutputLayout.failed_build_log), newest first;
    stage-1 logs left out."""
    canonical = canonicalize_name(name)
    found = []
    for path in layout.logs.glob(f"{canonical}-*.log"):
        project, _, version = path.name.removesuffix(".log").rpartition("-")
        try:
            if project == canonical and layout.failed_build_log(project, Version(version)) == path:
                found.append(path)
        except InvalidVersion:
            continue
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
