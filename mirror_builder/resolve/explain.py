"""Why a resolution failed, said the way a person would: who wants what, and why no version of
it can be used (none exists, only wheels, yanked, another Python, or none can be built)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.resolve.pages import DistributionFile, file_version
from mirror_builder.resolve.target import TargetEnvironment

if TYPE_CHECKING:
    from mirror_builder.resolve.resolver import Provider, RequiredBy, Unbuildable


WHEEL_ONLY_HINT = ("mirror-builder builds from sdists. To use {name} anyway, set pre_built: true "
                   "(take the upstream wheel as it is) or a source (url with sha256, or git with "
                   "tag) in {name}.yaml in the overrides folder")


def explain_conflict(causes, provider: Provider, target: TargetEnvironment,
                     required_by: RequiredBy | None = None, asked_by: str | None = None) -> str:
    """Say who wants what, like a resolver should, and why no version of it can be used.

    asked_by: the package whose build requirements these are; None for the user's own."""
    by_name: dict[NormalizedName, list] = {}
    for cause in causes:
        by_name.setdefault(canonicalize_name(cause.requirement.name), []).append(cause)
    return " Also: ".join(
        f"cannot resolve {name}: "
        f"{'; '.join(_who_wants_what(name, found, provider, required_by, asked_by))}. "
        f"{_why_no_version_fits(name, [c.requirement for c in found], provider, target)}"
        for name, found in sorted(by_name.items()))


def _who_wants_what(name: NormalizedName, causes, provider: Provider,
                    required_by: RequiredBy | None, asked_by: str | None) -> list[str]:
    # An extra's link to its own base (a[x]==1.0 requires a==1.0) says nothing new.
    telling = [c for c in causes if c.parent is None or c.parent.name != name] or list(causes)
    wants = []
    for cause in telling:
        if cause.parent is None:
            text = f"{asked_by} needs {cause.requirement} to build" if asked_by \
                else f"you asked for {cause.requirement}"
        else:
            path = required_by.path_to(cause.parent) if required_by else (cause.parent.pin,)
            text = f"{' -> '.join(path)} requires {cause.requirement}"
        if text not in wants:
            wants.append(text)
    constraint = provider.constraints.get(name)
    if constraint:
        wants.append(f"{name} is constrained to {constraint} (-c)")
    return wants


def _why_no_version_fits(name: NormalizedName, requirements: Sequence[Requirement],
                         provider: Provider, target: TargetEnvironment) -> str:
    if name in provider.direct:
        local = provider.direct[name]
        return f"{name} is the local sdist {local.file.filename} (version {local.version})"
    files = provider.finder.project_files(name)
    if not files:
        return f"{name} does not exist on the index; check the name"
    builds_from_sdist = provider.distributions == "sdist" and name not in provider.any_file
    offered = [f for f in files if _is_wanted(f, provider, name)]
    if builds_from_sdist and not offered:
        newest = max(_versions(files, name), default=None)
        every = f": every version, up to {newest}, exists only as wheels" if newest else ""
        return (f"{name} has no source distribution on the index (wheels only){every}. "
                + WHEEL_ONLY_HINT.format(name=name))
    refused = provider.skipped_over(name, requirements)
    if refused:
        return f"{describe_skipped(name, refused)}, and no earlier version is allowed"
    specifiers = [r.specifier for r in requirements] + \
        [c for c in [provider.constraints.get(name)] if c]
    specifier = SpecifierSet()
    for one in specifiers:
        specifier &= one
    pinned = pinned_version(specifier)
    usable = [f for f in offered if target.accepts_python(f.requires_python) and not f.yanked]
    usable_versions = _versions(usable, name)
    matching = {v for v in _versions(files, name)
                if provider._spec_allows(specifier, v, pinned is not None)}
    if not matching:
        reason = _no_version_allowed(name, specifiers, specifier, pinned, usable_versions, provider)
    elif not matching & set(_versions(offered, name)):
        reason = _only_as_wheels(name, matching)
    else:
        reason = _why_unusable(name, matching, offered, pinned, target)
    kind = "sdists" if builds_from_sdist else "wheels" if provider.distributions == "wheel" \
        else "files"
    listing = (f"{name} {kind} usable on Python {target.python_version}: "
               f"{_nearby(usable_versions, pinned)}")
    return f"{reason}. {listing}" if reason else listing


def _no_version_allowed(name: NormalizedName, specifiers: list[SpecifierSet],
                        combined: SpecifierSet, pinned: Version | None,
                        usable: list[Version], provider: Provider) -> str:
    distinct = list(dict.fromkeys(str(s) for s in specifiers))
    pre_releases = [v for v in usable if v.is_prerelease and combined.contains(v, prereleases=True)]
    if pre_releases:
        return (f"only pre-releases of {name} are allowed ({_nearby(pre_releases, None, 3)}); "
                f"pass --pre, or name one in the requirement ({name}=={pre_releases[-1]})")
    if len(distinct) > 1:
        takes = []
        for text in distinct:
            allowed = [v for v in usable if provider._spec_allows(SpecifierSet(text), v, False)]
            takes.append(f"{name}{text} alone would take {allowed[-1]}" if allowed
                         else f"no usable version is {name}{text}")
        return f"no version of {name} satisfies all of them ({', '.join(takes)})"
    if pinned is not None:
        return f"{name} has no version {pinned}"
    return f"{name} has no version matching {combined}" if combined else f"{name} has no release"


def _only_as_wheels(name: NormalizedName, versions: set[Version]) -> str:
    shown = sorted(versions)
    listed = ", ".join(str(v) for v in shown[-3:])
    older = f" (and {len(shown) - 3} older versions)" if len(shown) > 3 else ""
    verb = "exists" if len(shown) == 1 else "exist"
    return (f"{name} {listed}{older} {verb} only as wheels on the index. "
            + WHEEL_ONLY_HINT.format(name=name))


def _why_unusable(name: NormalizedName, matching: set[Version], offered: list[DistributionFile],
                  pinned: Version | None, target: TargetEnvironment) -> str:
    """What keeps the newest allowed versions out: requires-python, or a yank."""
    problems = []
    for version in sorted(matching & set(_versions(offered, name)), reverse=True)[:3]:
        files = [f for f in offered if file_version(f, name) == version]
        if not any(target.accepts_python(f.requires_python) for f in files):
            problems.append(f"{name} {version} requires Python {files[0].requires_python} (the "
                            f"target {target.name} has {target.python_version})")
        elif all(f.yanked for f in files) and pinned is None:
            why = files[0].yanked_reason or "no reason given"
            problems.append(f"{name} {version} is yanked ({why}); pin it with == to take it anyway")
    return "; ".join(problems)


def describe_skipped(name: str, skipped: Sequence[tuple[Version, Unbuildable]]) -> str:
    """"platformdirs 4.14.8, 4.14.7 skipped: build requirement python-sbom is not on the
    index", versions with the same reason listed together, newest first."""
    by_reason: dict[str, list[Version]] = {}
    for version, why in skipped:
        by_reason.setdefault(why.reason, []).append(version)
    return "; ".join(f"{name} {', '.join(str(v) for v in sorted(versions, reverse=True))} "
                     f"skipped: {reason}" for reason, versions in by_reason.items())


def _is_wanted(file: DistributionFile, provider: Provider, name: NormalizedName) -> bool:
    if name in provider.any_file:
        return file.is_wheel or file.is_sdist
    return file.is_wheel if provider.distributions == "wheel" else file.is_sdist


def _versions(files: Iterable[DistributionFile], name: str) -> list[Version]:
    return sorted({v for f in files if (v := file_version(f, name)) is not None})


def pinned_version(specifier: SpecifierSet) -> Version | None:
    """The version an exact == pin names, if the specifier has one."""
    for spec in specifier:
        if spec.operator in ("==", "===") and "*" not in spec.version:
            try:
                return Version(spec.version)
            except ValueError:
                return None
    return None


def _nearby(versions: list[Version], around: Version | None, count: int = 8) -> str:
    """Up to count versions: those nearest to around when given, else the newest ones."""
    if not versions:
        return "none"
    if around is None:
        start = max(0, len(versions) - count)
    else:
        at = bisect.bisect_left(versions, around)
        start = min(max(0, at - count // 2), max(0, len(versions) - count))
    text = ", ".join(str(v) for v in versions[start:start + count])
    if start > 0:
        text = "... " + text
    if start + count < len(versions):
        text += f" ... (the newest is {versions[-1]})"
    return text


def summarize_conflict(causes, provider: Provider) -> str:
    """What a resolution lacks, in a few words per project ("python-sbom is not on the index"),
    for a listing of skipped versions."""
    by_name: dict[NormalizedName, list[Requirement]] = {}
    for cause in causes:
        if cause.parent is None or cause.parent.name != canonicalize_name(cause.requirement.name):
            by_name.setdefault(canonicalize_name(cause.requirement.name), []).append(
                cause.requirement)
    return "; ".join(_short_reason(name, found, provider) for name, found in sorted(by_name.items()))


def _short_reason(name: NormalizedName, requirements: list[Requirement],
                  provider: Provider) -> str:
    wanted = ", ".join(dict.fromkeys(str(r) for r in requirements))
    if name in provider.direct:
        return f"{wanted} does not match the local sdist {provider.direct[name].file.filename}"
    files = provider.finder.project_files(name)
    if not files:
        return f"{name} is not on the index"
    if provider.distributions == "sdist" and name not in provider.any_file and \
            not any(f.is_sdist for f in files):
        return f"{name} has no sdist on the index"
    refused = provider.skipped_over(name, requirements)
    if refused:
        return f"no version of {wanted} can be built ({refused[0][1].reason})"
    return f"no usable version of {wanted} on the index"
