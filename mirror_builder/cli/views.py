"""What `inspect` shows: a wheel's provenance, readable (rich) or as JSON."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mirror_builder.provenance.verify import Verdict

INSPECT_SCHEMA = "mirror-builder/inspect/v1"
VERIFY_SCHEMA = "mirror-builder/verify-wheel/v1"
_VERDICT_STYLES = {"verified": "green", "unverified": "yellow", "failed": "bold red"}


def verdict_line(verdict: Verdict, name_file: bool = False) -> Text:
    """One line: verified / unverified / NOT VERIFIED, and why (Text: reasons may hold brackets)."""
    subject = f"{verdict.path}: " if name_file else ""
    if verdict.status == "verified":
        return Text(f"verified: {subject}sha256 matches the record beside the index at "
                    f"{verdict.index_record_path}", style=_VERDICT_STYLES["verified"])
    if verdict.status == "failed":
        return Text(f"NOT VERIFIED: {subject}{'; '.join(verdict.reasons)}",
                    style=_VERDICT_STYLES["failed"])
    return Text(f"unverified: {subject}no record beside an index to compare with (looked for "
                f"{verdict.index_record_path}); the record inside the wheel is only a claim: its "
                f"RECORD is consistent, but anyone can copy a record into a wheel and rewrite "
                f"RECORD", style=_VERDICT_STYLES["unverified"])


def render_verdict(console: Console, verdict: Verdict) -> None:
    """The verdict first, plainly, then the given file's own sha256 (never a record's)."""
    console.print(verdict_line(verdict), soft_wrap=True)
    if verdict.sha256:
        console.print(Text(f"sha256 {verdict.sha256}  {verdict.path}"), soft_wrap=True)


def verify_document(verdicts: list[Verdict]) -> dict[str, Any]:
    return {"schema": VERIFY_SCHEMA, "verified": all(v.status == "verified" for v in verdicts),
            "wheels": [v.to_dict() for v in verdicts]}


def render_records(console: Console, title: str, records: list[dict[str, Any]],
                   jobs: dict[str, dict[str, Any]] | None = None,
                   file_sha256: str | None = None,
                   verification: dict[str, Any] | None = None) -> None:
    """The newest build in full (with the job that made it, and its last `verify`), then the
    rebuild history. file_sha256: the sha256 of the wheel file inspected, shown instead of the
    record's."""
    newest = records[0]
    details = _details(newest, (jobs or {}).get((newest.get("job") or {}).get("id", "")),
                       file_sha256)
    if verification is not None:
        details.renderables[0].add_row("verified", escape(verification_text(verification)))
    console.print(Panel(details, title=f"{title}: {newest['wheel']}", expand=False))
    if len(records) > 1 or newest["rebuild"]["number"]:
        history = Table(title="rebuild history (newest first)")
        for column in ("number", "wheel", "built", "reason"):
            history.add_column(column)
        for record in records:
            rebuild = record["rebuild"]
            reasons = [rebuild["reason"]] if rebuild.get("reason") else []
            reasons += [f"changelog: {c}" for c in rebuild.get("changelog", [])]
            history.add_row(str(rebuild["number"]), record["wheel"], record["started_at"][:19],
                            "; ".join(reasons) or "first build")
        console.print(history)


def verification_text(statement: dict[str, Any]) -> str:
    """A verification statement (provenance/verification.py) in a line or two."""
    predicate = statement.get("predicate", {})
    found = predicate.get("reproduction", {})
    varied = found.get("varied") or {}
    text = (f"{predicate.get('verificationResult')} on {predicate.get('timeVerified')}: "
            f"{found.get('status')}, {found.get('summary')}")
    if varied:
        text += (f"\n(rebuilt in {varied.get('build_dir')} on host {varied.get('hostname')} with "
                 f"{varied.get('cpus')} CPU(s), the environment's order {varied.get('environment_order')})")
    return text


def _details(record: dict[str, Any], job_result: dict[str, Any] | None = None,
             file_sha256: str | None = None) -> Group:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    _job_rows(table, record, job_result)
    _source_rows(table, record)
    _environment_rows(table, record)
    if record.get("repair"):
        table.add_row("repair", _repair_text(record["repair"]))
    table.add_row("timing", f"{record['started_at'][:19]} for {record['seconds']:.1f} s "
                            f"(exit status {record['exit_status']})")
    rebuild = record["rebuild"]
    table.add_row("rebuild", f"number {rebuild['number']} ({rebuild['numbering']})"
                             + (f": {rebuild['reason']}" if rebuild.get("reason") else ""))
    table.add_row("settings", f"sha256 {record['settings_sha256'][:16]}…")
    if file_sha256:
        table.add_row("file sha256", file_sha256)
    elif record.get("wheel_sha256"):
        table.add_row("wheel sha256", record["wheel_sha256"])
    if record.get("content_sha256"):
        table.add_row("content sha256", f"{record['content_sha256']}\n(its files apart from "
                                        f"the record it carries: equal across reproducible "
                                        f"builds)")
    table.add_row("tool", f"mirror-builder {record['mirror_builder_version']}")
    return Group(table)


def _job_rows(table: Table, record: dict[str, Any], job_result: dict[str, Any] | None) -> None:
    """The job that made the wheel, and its smoke test."""
    job = record.get("job")
    if job:
        ended = (f"; {job_result['result']} at {job_result['ended_at'][:19]} after "
                 f"{job_result['seconds']:.1f} s; log {job_result['log_path']}") if job_result else ""
        table.add_row("job", f"{job['id']}: {job['trigger']} ({job['detail']}), started "
                             f"{job['started_at'][:19]}{ended}")
    smoke = record.get("smoke_test")
    if smoke:
        imported = ", ".join(smoke["imports"]) or "no modules"
        where = "in its build container: installed from our wheels alone" \
            if smoke.get("container") == "build" else "installed from our index alone"
        table.add_row("smoke test", f"{smoke['status']}: {where}, imported {imported} "
                                    f"({smoke['seconds']:.1f} s)"
                                    + (f"; {smoke['error']}" if smoke["error"] else ""))


def _source_rows(table: Table, record: dict[str, Any]) -> None:
    """What it was built from: the source and its patches."""
    source = record["source"]
    origin = source.get("origin", {"kind": "sdist"})
    described = {"sdist": "source (sdist from the index)",
                 "url": f"source (override: {origin.get('url')})",
                 "git": f"source (override: {origin.get('repository')} {origin.get('tag')}, "
                        f"commit {origin.get('commit', '')[:12]})"}
    table.add_row("built from", described.get(origin["kind"], "source")
                  if record.get("built_from_source", True)
                  else "[bold red]NOT built from source: an upstream wheel[/] "
                       f"({escape(origin.get('why', 'overrides: pre_built'))})")
    cached = record.get("from_cache")
    if cached:
        table.add_row("from cache", escape(
            f"taken from the build cache: built {cached['built_at'][:19]} for "
            f"{cached['output']} (build key {cached['build_key'][:16]}...); its job, timing "
            f"and log are that build's; the smoke test is this output's own"))
    table.add_row("source", f"{source['url']}\nsha256 {source['sha256']}")
    patches = record["patches"]
    table.add_row("patches", "\n".join(f"{p['name']}  sha256 {p['sha256'][:16]}…" for p in patches)
                  or "none")


def _environment_rows(table: Table, record: dict[str, Any]) -> None:
    """Where it was built: image, target, backend, build environment, sandbox."""
    image = record["image"]
    table.add_row("image", f"{image['tag']}\nid {image['id'][:19]}…  base {image['base']}\n"
                           f"Containerfile sha256 {image['containerfile_sha256'][:16]}…, "
                           f"{len(image.get('system_packages', []))} system packages")
    target = record["target"]
    table.add_row("target", f"{target['name']}: {target['platform_python_implementation']} "
                            f"{target['python_full_version']} on {target['sys_platform']} "
                            f"{target['platform_machine']}")
    # Records made before variants existed have none: they were built as the default one is.
    table.add_row("variant", escape(str(record.get("variant", "not recorded"))))
    table.add_row("backend", f"{record['build_system']['backend']}; requires "
                             f"{', '.join(record['build_system']['requires']) or 'nothing'}"
                             + (f"; asked for {', '.join(record['backend_requires'])}"
                                if record["backend_requires"] else ""))
    table.add_row("build env", "\n".join(record["build_env"]["freeze"]) or "empty")
    sandbox = record["sandbox"]
    table.add_row("sandbox", f"network {sandbox['network']}, {sandbox['user']}, capabilities "
                             f"{sandbox['capabilities']}, memory {sandbox['memory']}, "
                             f"pids {sandbox['pids_limit']}, timeout {sandbox['timeout_seconds']} s"
                             + (f"; in memory: {escape(', '.join(map(str, sandbox['in_memory'])))}"
                                if isinstance(sandbox.get("in_memory"), list)
                                and sandbox["in_memory"] else ""))
    if isinstance(sandbox.get("user_namespace"), dict):
        table.add_row("user namespace", "; ".join(
            f"{kind}s {_id_ranges(sandbox['user_namespace'].get(f'{kind}_map', ''))}"
            for kind in ("uid", "gid")))
    host = sandbox.get("host")
    if isinstance(host, dict):
        table.add_row("built on", escape(
            f"worker {host.get('name')} of a build cluster ({host.get('executor')}): host "
            f"{host.get('host')}, kernel {host.get('kernel')}, {host.get('podman')}, its image "
            f"id {str(host.get('image_id'))[:19]}…"))


def _repair_text(repair: dict[str, Any]) -> str:
    """The auditwheel repair: tool, from and to, and the libraries it bundled (a record made
    before bundled was recorded says nothing about them)."""
    text = escape(f"{repair.get('tool')}: {repair.get('from')} -> {repair.get('to')}")
    if "bundled" in repair:
        text += "\nbundled " + (escape(", ".join(map(str, repair["bundled"])))
                                 or "nothing (no library outside the wheel was needed)")
    return text


def _id_ranges(id_map: str) -> str:
    """A uid_map's lines ("inside outside count") as "0-65533 are host 2147483647-2147549180"
    (a map in another form, as it is: a record read from a wheel is not trusted to be well-formed)."""
    ranges = []
    for line in str(id_map).splitlines():
        fields = line.split()
        if len(fields) != 3 or not all(field.isdigit() for field in fields):
            return escape(repr(id_map))
        inside, outside, count = (int(field) for field in fields)
        ranges.append(f"{inside}-{inside + count - 1} are host {outside}-{outside + count - 1}")
    return ", ".join(ranges) or escape(repr(id_map))


def inspect_document(records: list[dict[str, Any]],
                     jobs: dict[str, dict[str, Any]] | None = None,
                     verdict: Verdict | None = None,
                     rebuilt: dict[str, Any] | None = None) -> dict[str, Any]:
    """The records, and how each one's job ended (from the audit log), by job id; for a wheel
    file, the verification (its own schema) too; rebuilt: the statement of each wheel's last
    `verify` by wheel name."""
    document = {"schema": INSPECT_SCHEMA, "records": records, "jobs": jobs or {},
                "verified_by_rebuild": rebuilt or {}}
    if verdict is not None:
        document["verification"] = verdict.to_dict()
    return document
