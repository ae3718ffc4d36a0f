"""Specification of mirror_builder.resolve.resolver, against an in-memory index (no network, no podman).

The target is deliberately not the host: CPython 3.9.18 on aarch64 Linux, while the tests run on
the project's own interpreter (3.11+, usually x86_64). Markers and requires-python must be judged
for the target.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from mirror_builder.errors import ResolutionError
from mirror_builder.resolve.resolver import Candidate, Resolution, resolve
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.resolve.pages import DistributionFile

# Every key target.PROBE_SCRIPT reports, as a CPython 3.9 aarch64 Linux image would report it.
AARCH64_PY39 = TargetEnvironment("el9-aarch64-py39", {
    "implementation_name": "cpython",
    "implementation_version": "3.9.18",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_release": "6.1.0-18-arm64",
    "platform_system": "Linux",
    "platform_version": "#1 SMP Debian 6.1.76-1 (2024-02-01)",
    "python_full_version": "3.9.18",
    "platform_python_implementation": "CPython",
    "python_version": "3.9",
    "sys_platform": "linux",
})

Deps = list[str] | None


def sdist(name: str, version: str, *, requires_python: str | None = None,
          yanked: bool = False, ext: str = ".tar.gz") -> DistributionFile:
    filename = f"{name.replace('-', '_')}-{version}{ext}"
    return DistributionFile(
        filename=filename,
        url=f"https://example.invalid/{filename}",
        sha256=hashlib.sha256(filename.encode()).hexdigest(),
        requires_python=requires_python,
        yanked=yanked,
        yanked_reason="broken" if yanked else None,
    )


def wheel(name: str, version: str) -> DistributionFile:
    filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    return DistributionFile(filename=filename, url=f"https://example.invalid/{filename}",
                            sha256=hashlib.sha256(filename.encode()).hexdigest())


class MemoryIndex:
    """A Finder over {"name": {"version": [requirement, ...] or None}}.

    yanked: {"name==version"}; requires_python: {"name==version": ">=3.10"};
    wheel_only: project names whose versions are listed as wheels only, or "name==version"
    for one version listed as wheels only;
    local_deps: {"name==version": [...]} for candidates not listed on the index (direct ones).
    """

    def __init__(self, projects: Mapping[str, Mapping[str, Deps]], *,
                 yanked: Iterable[str] = (), requires_python: Mapping[str, str] | None = None,
                 wheel_only: Iterable[str] = (),
                 local_deps: Mapping[str, Deps] | None = None) -> None:
        self.projects = {canonicalize_name(n): dict(v) for n, v in projects.items()}
        self.yanked = set(yanked)
        self.requires_python = dict(requires_python or {})
        self.wheel_only = {n if "==" in n else canonicalize_name(n) for n in wheel_only}
        self.local_deps = dict(local_deps or {})
        self.dependencies_asked: list[str] = []

    def project_files(self, name: str) -> list[DistributionFile]:
        name = canonicalize_name(name)
        files = []
        for version in self.projects.get(name, {}):
            pin = f"{name}=={version}"
            if name in self.wheel_only or pin in self.wheel_only:
                files.append(wheel(name, version))
                continue
            files.append(sdist(name, version, requires_python=self.requires_python.get(pin),
                               yanked=pin in self.yanked))
        return files

    def dependencies(self, candidate: Candidate) -> list[str] | None:
        pin = f"{candidate.name}=={candidate.version}"
        self.dependencies_asked.append(pin)
        if pin in self.local_deps:
            return self.local_deps[pin]
        return self.projects[candidate.name][str(candidate.version)]


def run(requirements: Iterable[str], index: MemoryIndex, **kwargs) -> Resolution:
    return resolve([Requirement(r) for r in requirements], index, AARCH64_PY39, **kwargs)


def versions(resolution: Resolution) -> dict[str, str]:
    return {name: str(candidate.version) for name, candidate in resolution.pins.items()}


# -- choosing versions -----------------------------------------------------------------------
def test_picks_the_newest_version_that_satisfies_every_requirement():
    index = MemoryIndex({
        "a": {"1.0": ["b>=2"], "2.0": ["b>=2,<4"]},
        "b": {"1.0": [], "2.0": [], "3.0": [], "4.0": []},
    })

    resolution = run(["a", "b!=3.0"], index)

    assert versions(resolution) == {"a": "2.0", "b": "2.0"}
    pinned_b = resolution.pins["b"]
    assert pinned_b.file.filename == "b-2.0.tar.gz"
    assert pinned_b.file.url == "https://example.invalid/b-2.0.tar.gz"


def test_backtracks_to_an_older_parent_when_the_newest_parent_needs_a_conflicting_dependency():
    # Highest-per-requirement would take a 2.0, whose c>=2 contradicts b's c<2. Only a 1.0 works.
    # a 2.0 also pulls in b2, which must not survive the backtrack.
    index = MemoryIndex({
        "a": {"1.0": ["c<2"], "2.0": ["c>=2", "b2"]},
        "b": {"1.0": ["c<2"]},
        "b2": {"1.0": []},
        "c": {"1.0": [], "2.0": []},
    })

    resolution = run(["a", "b"], index)

    assert versions(resolution) == {"a": "1.0", "b": "1.0", "c": "1.0"}
    assert "a==2.0" in index.dependencies_asked  # it really tried the newest parent first
    assert resolution.edges == {"a": ("c",), "b": ("c",)}
    assert sorted(resolution.why["c"]) == [("a==1.0", "c<2"), ("b==1.0", "c<2")]


def test_normalizes_project_names_in_requirements_and_pins():
    index = MemoryIndex({"foo-bar": {"1.0": []}})

    resolution = run(["Foo_Bar>=1"], index)

    assert versions(resolution) == {"foo-bar": "1.0"}
    assert resolution.pins["foo-bar"].file.filename == "foo_bar-1.0.tar.gz"


def test_skips_a_yanked_file_when_not_pinned():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}}, yanked={"a==2.0"})

    assert versions(run(["a"], index)) == {"a": "1.0"}
    assert versions(run(["a>=1.0"], index)) == {"a": "1.0"}


def test_chooses_a_yanked_file_when_pinned_with_double_equals():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}}, yanked={"a==2.0"})

    resolution = run(["a==2.0"], index)

    assert versions(resolution) == {"a": "2.0"}
    assert resolution.pins["a"].file.yanked


def test_a_requirement_satisfiable_only_by_a_yanked_file_fails_without_a_pin():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}}, yanked={"a==2.0"})

    with pytest.raises(ResolutionError):
        run(["a>=2"], index)


def test_a_wildcard_equals_is_not_a_pin_so_it_does_not_choose_a_yanked_file():
    index = MemoryIndex({"a": {"2.0": [], "2.1": []}}, yanked={"a==2.1"})

    assert versions(run(["a==2.*"], index)) == {"a": "2.0"}


def test_skips_files_whose_requires_python_excludes_the_target_python():
    host_python = Version(".".join(map(str, __import__("sys").version_info[:3])))
    assert SpecifierSet(">=3.10").contains(host_python)  # the host alone would accept 2.0
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}}, requires_python={"a==2.0": ">=3.10"})

    assert versions(run(["a"], index)) == {"a": "1.0"}


def test_keeps_files_whose_requires_python_includes_the_target_python():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}}, requires_python={"a==2.0": ">=3.8,<3.10"})

    assert versions(run(["a"], index)) == {"a": "2.0"}


def test_a_file_with_an_unparsable_requires_python_is_skipped():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}}, requires_python={"a==2.0": ">=3.9.*"})

    assert versions(run(["a"], index)) == {"a": "1.0"}


# -- markers ---------------------------------------------------------------------------------
def test_dependency_markers_are_evaluated_for_the_target_not_the_host():
    index = MemoryIndex({
        "a": {"1.0": [
            'arm-only; platform_machine == "aarch64"',
            'x86-only; platform_machine == "x86_64"',
            'new-python; python_version >= "3.11"',
            'old-python; python_version < "3.10"',
            'not-windows; sys_platform != "win32"',
        ]},
        "arm-only": {"1.0": []},
        "x86-only": {"1.0": []},
        "new-python": {"1.0": []},
        "old-python": {"1.0": []},
        "not-windows": {"1.0": []},
    })

    resolution = run(["a"], index)

    assert set(resolution.pins) == {"a", "arm-only", "old-python", "not-windows"}


def test_top_level_requirement_markers_are_evaluated_for_the_target():
    index = MemoryIndex({"arm-only": {"1.0": []}, "x86-only": {"1.0": []}})

    resolution = run(['arm-only; platform_machine == "aarch64"',
                      'x86-only; platform_machine == "x86_64"'], index)

    assert versions(resolution) == {"arm-only": "1.0"}


# -- pre-releases ----------------------------------------------------------------------------
PRERELEASES = {"a": {"1.0": [], "1.1b1": [], "2.0b1": []}}


def test_pre_releases_are_excluded_by_default():
    assert versions(run(["a"], MemoryIndex(PRERELEASES))) == {"a": "1.0"}


def test_pre_releases_are_included_when_the_specifier_names_one():
    assert versions(run(["a>=2.0b1"], MemoryIndex(PRERELEASES))) == {"a": "2.0b1"}


def test_pre_releases_are_included_with_an_exact_pin():
    assert versions(run(["a==1.1b1"], MemoryIndex(PRERELEASES))) == {"a": "1.1b1"}


def test_pre_releases_are_included_when_allowed_globally():
    resolution = run(["a"], MemoryIndex(PRERELEASES), allow_prereleases=True)

    assert versions(resolution) == {"a": "2.0b1"}


def test_a_wildcard_equals_does_not_switch_pre_releases_on():
    assert versions(run(["a==1.*"], MemoryIndex(PRERELEASES))) == {"a": "1.0"}


# -- constraints, preferences, direct candidates ---------------------------------------------
def test_constraints_narrow_the_versions_of_a_top_level_requirement():
    index = MemoryIndex({"a": {"1.0": [], "1.5": [], "2.0": []}})

    resolution = run(["a"], index, constraints={canonicalize_name("A"): SpecifierSet("<2")})

    assert versions(resolution) == {"a": "1.5"}


def test_constraints_narrow_the_versions_of_a_transitive_dependency():
    index = MemoryIndex({"a": {"1.0": ["b"]}, "b": {"1.0": [], "2.0": [], "3.0": []}})

    resolution = run(["a"], index, constraints={"b": SpecifierSet("!=3.0")})

    assert versions(resolution) == {"a": "1.0", "b": "2.0"}


def test_constraints_do_not_add_projects_nobody_requires():
    index = MemoryIndex({"a": {"1.0": []}, "unrelated": {"1.0": []}})

    resolution = run(["a"], index, constraints={"unrelated": SpecifierSet("==1.0")})

    assert versions(resolution) == {"a": "1.0"}


def test_a_constraint_that_excludes_every_version_fails_and_says_so():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}})

    with pytest.raises(ResolutionError) as info:
        run(["a"], index, constraints={"a": SpecifierSet(">=3")})

    assert "constrained to >=3" in str(info.value)


def test_preferred_version_is_chosen_over_newer_ones_when_it_satisfies():
    index = MemoryIndex({"a": {"1.0": [], "2.0": [], "3.0": []}})

    resolution = run(["a"], index, preferred={"a": Version("2.0")})

    assert versions(resolution) == {"a": "2.0"}


def test_preferred_version_is_ignored_when_it_does_not_satisfy():
    index = MemoryIndex({"a": {"1.0": [], "2.0": [], "3.0": []}})

    resolution = run(["a>=2.5"], index, preferred={"a": Version("2.0")})

    assert versions(resolution) == {"a": "3.0"}


def local_candidate(name: str, version: str) -> Candidate:
    filename = f"{name}-{version}.tar.gz"
    file = DistributionFile(filename=filename, url=f"file:///srv/local/{filename}",
                            sha256=hashlib.sha256(filename.encode()).hexdigest())
    return Candidate(canonicalize_name(name), Version(version), file)


def test_a_direct_candidate_is_used_for_its_name_instead_of_the_index():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}, "b": {"1.0": []}},
                        local_deps={"a==1.5": ["b"]})
    local = local_candidate("a", "1.5")

    resolution = run(["a"], index, direct={"a": local})

    assert versions(resolution) == {"a": "1.5", "b": "1.0"}
    assert resolution.pins["a"] == local
    assert resolution.pins["a"].file.url == "file:///srv/local/a-1.5.tar.gz"


def test_a_direct_candidate_that_contradicts_a_requirement_fails():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}})

    with pytest.raises(ResolutionError):
        run(["a>=2"], index, direct={"a": local_candidate("a", "1.5")})


# -- extras and unknown dependencies ---------------------------------------------------------
EXTRAS = {
    "a": {"1.0": ["b", 'c; extra == "x"']},
    "b": {"1.0": []},
    "c": {"1.0": []},
}


def test_an_extra_pulls_in_the_dependencies_it_names():
    resolution = run(["a[x]"], MemoryIndex(EXTRAS))

    assert versions(resolution) == {"a": "1.0", "b": "1.0", "c": "1.0"}
    assert resolution.pins["a"].name == "a"


def test_without_the_extra_its_dependencies_are_not_pulled_in():
    resolution = run(["a"], MemoryIndex(EXTRAS))

    assert versions(resolution) == {"a": "1.0", "b": "1.0"}


def test_an_extra_requested_by_a_dependency_pulls_in_the_extras_dependencies():
    index = MemoryIndex({"top": {"1.0": ["a[x]"]}, **EXTRAS})

    resolution = run(["top"], index)

    assert versions(resolution) == {"top": "1.0", "a": "1.0", "b": "1.0", "c": "1.0"}


def test_unknown_dependencies_resolve_as_none():
    index = MemoryIndex({"a": {"1.0": None}})

    resolution = run(["a"], index)

    assert versions(resolution) == {"a": "1.0"}
    assert resolution.edges == {}
    assert index.dependencies_asked == ["a==1.0"]


# -- errors ----------------------------------------------------------------------------------
def test_a_conflict_names_who_requires_what():
    index = MemoryIndex({
        "a": {"1.0": ["c<2"]},
        "b": {"1.0": ["c>=2"]},
        "c": {"1.0": [], "2.0": []},
    })

    with pytest.raises(ResolutionError) as info:
        run(["a", "b"], index)

    message = str(info.value)
    assert "a==1.0 requires c<2" in message
    assert "b==1.0 requires c>=2" in message
    assert "c sdists usable on Python 3.9.18: 1.0, 2.0" in message


def test_a_conflict_carries_the_chain_of_requirements_given_as_context():
    index = MemoryIndex({"a": {"1.0": []}})

    with pytest.raises(ResolutionError) as info:
        run(["a>=2"], index, context=("app==1.0", "lib==2.0"))

    assert info.value.chain == ("app==1.0", "lib==2.0")
    assert str(info.value).endswith("(required by: app==1.0 -> lib==2.0)")
    assert "a>=2" in str(info.value)


def test_build_requirements_that_cannot_be_resolved_name_the_package_that_needs_them():
    index = MemoryIndex({"backend": {"1.0": []}})

    with pytest.raises(ResolutionError) as info:
        run(["backend>=2"], index, context=("app==1.0", "lib==2.0"))

    assert "cannot resolve backend: lib==2.0 needs backend>=2 to build." in str(info.value)
    assert "you asked for" not in str(info.value)


def test_a_missing_project_is_reported_as_not_existing():
    index = MemoryIndex({"a": {"1.0": ["ghost>=1"]}})

    with pytest.raises(ResolutionError) as info:
        run(["a"], index)

    assert "a==1.0 requires ghost>=1" in str(info.value)
    assert "ghost does not exist on the index" in str(info.value)


def test_a_wheel_only_project_is_reported_as_having_no_source_distribution():
    index = MemoryIndex({"w": {"1.0": [], "2.0": []}}, wheel_only={"w"})

    with pytest.raises(ResolutionError) as info:
        run(["w"], index)

    assert "w has no source distribution on the index (wheels only)" in str(info.value)


def test_the_explanation_lists_only_versions_usable_on_the_target():
    index = MemoryIndex({"a": {"1.0": [], "2.0": [], "3.0": []}},
                        yanked={"a==2.0"}, requires_python={"a==3.0": ">=3.10"})

    with pytest.raises(ResolutionError) as info:
        run(["a>=2"], index)

    assert "a sdists usable on Python 3.9.18: 1.0" in str(info.value)
    assert "2.0" not in str(info.value).split("usable on Python 3.9.18:")[1]


def test_a_version_that_does_not_exist_is_named_with_the_versions_nearest_to_it():
    index = MemoryIndex({"a": {v: [] for v in
                               ["0.9", "1.0", "1.1", "1.2", "1.3", "1.4", "2.0", "2.1", "2.2", "2.3",
                                "2.4", "3.0", "3.1", "3.2"]}})

    with pytest.raises(ResolutionError) as info:
        run(["a==2.2.5"], index)

    message = str(info.value)
    assert "cannot resolve a: you asked for a==2.2.5. a has no version 2.2.5." in message
    assert "a sdists usable on Python 3.9.18: ... 1.4, 2.0, 2.1, 2.2, 2.3, 2.4, 3.0, 3.1 ... " \
           "(the newest is 3.2)" in message


def test_a_version_beyond_the_newest_lists_the_newest_versions():
    index = MemoryIndex({"a": {"1.0": [], "1.1": []}})

    with pytest.raises(ResolutionError) as info:
        run(["a==99.0"], index)

    assert str(info.value).endswith("a has no version 99.0. a sdists usable on Python 3.9.18: "
                                    "1.0, 1.1")


def test_a_wheel_only_project_says_mirror_builder_builds_from_sdists_and_names_the_overrides():
    index = MemoryIndex({"w": {"1.0": [], "2.0": []}}, wheel_only={"w"})

    with pytest.raises(ResolutionError) as info:
        run(["w"], index)

    message = str(info.value)
    assert "every version, up to 2.0, exists only as wheels" in message
    assert "mirror-builder builds from sdists" in message
    assert "pre_built: true" in message and "source (url with sha256, or git with tag)" in message
    assert "w.yaml in the overrides folder" in message


def test_a_version_that_exists_only_as_wheels_says_so_although_older_ones_have_sdists():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}}, wheel_only={"a==2.0"})

    with pytest.raises(ResolutionError) as info:
        run(["a==2.0"], index)

    message = str(info.value)
    assert "a 2.0 exists only as wheels on the index. mirror-builder builds from sdists" in message
    assert "pre_built: true" in message
    assert "a sdists usable on Python 3.9.18: 1.0" in message


def test_a_wheel_only_dependency_deep_in_the_tree_shows_the_chain_that_led_to_it():
    index = MemoryIndex({
        "app": {"1.0": ["lib>=1"]},
        "lib": {"1.0": ["mid"]},
        "mid": {"2.0": ["w>=1"]},
        "w": {"1.0": []},
    }, wheel_only={"w"})

    with pytest.raises(ResolutionError) as info:
        run(["app"], index, context=("tool==3.0",))

    message = str(info.value)
    assert "cannot resolve w: app==1.0 -> lib==1.0 -> mid==2.0 requires w>=1." in message
    assert "w has no source distribution on the index (wheels only)" in message
    assert message.endswith("(required by: tool==3.0)")


def test_a_conflict_says_what_each_requirement_alone_would_take():
    index = MemoryIndex({
        "web": {"3.1": ["tool>=3.1"]},
        "tool": {"2.2": [], "2.3": [], "3.0": [], "3.1": [], "3.2": []},
    })

    with pytest.raises(ResolutionError) as info:
        run(["web==3.1", "tool<3"], index)

    message = str(info.value)
    assert "you asked for tool<3" in message
    assert "web==3.1 requires tool>=3.1" in message
    assert "no version of tool satisfies all of them (tool<3 alone would take 2.3, tool>=3.1 " \
           "alone would take 3.2)" in message


def test_a_conflict_deep_in_the_tree_names_the_chain_behind_each_side():
    index = MemoryIndex({
        "app": {"1.0": ["left", "right"]},
        "left": {"1.0": ["c<2"]},
        "right": {"1.0": ["c>=2"]},
        "c": {"1.0": [], "2.0": []},
    })

    with pytest.raises(ResolutionError) as info:
        run(["app"], index)

    message = str(info.value)
    assert "app==1.0 -> left==1.0 requires c<2" in message
    assert "app==1.0 -> right==1.0 requires c>=2" in message


def test_a_version_whose_requires_python_excludes_the_target_says_which_python_it_needs():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}}, requires_python={"a==2.0": ">=3.10"})

    with pytest.raises(ResolutionError) as info:
        run(["a==2.0"], index)

    assert "a 2.0 requires Python >=3.10 (the target el9-aarch64-py39 has 3.9.18)" in \
        str(info.value)


def test_a_yanked_version_says_so_and_how_to_take_it_anyway():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}}, yanked={"a==2.0"})

    with pytest.raises(ResolutionError) as info:
        run(["a>=2"], index)

    assert "a 2.0 is yanked (broken); pin it with == to take it anyway" in str(info.value)


def test_only_pre_releases_allowed_says_how_to_allow_them():
    index = MemoryIndex({"a": {"1.0": [], "2.0b1": []}})

    with pytest.raises(ResolutionError) as info:
        run(["a>=1.5"], index)

    assert "only pre-releases of a are allowed (2.0b1); pass --pre, or name one in the " \
           "requirement (a==2.0b1)" in str(info.value)


def test_a_local_sdist_that_contradicts_a_requirement_is_named():
    index = MemoryIndex({"a": {"1.0": [], "2.0": []}})

    with pytest.raises(ResolutionError) as info:
        run(["a>=2"], index, direct={"a": local_candidate("a", "1.5")})

    assert "a is the local sdist a-1.5.tar.gz (version 1.5)" in str(info.value)


# -- why and edges ---------------------------------------------------------------------------
def test_why_records_the_parent_pin_and_requirement_text_of_a_transitive_dependency():
    index = MemoryIndex({"a": {"1.0": ["b>=1"]}, "b": {"1.0": []}})

    resolution = run(["a"], index)

    assert resolution.why["b"] == (("a==1.0", "b>=1"),)
    assert resolution.edges == {"a": ("b",)}


def test_why_records_none_as_the_parent_of_a_top_level_requirement():
    index = MemoryIndex({"a": {"1.0": ["b>=1"]}, "b": {"1.0": []}})

    resolution = run(["a>=1"], index)

    assert resolution.why["a"] == ((None, "a>=1"),)


def test_why_of_a_project_required_with_an_extra_omits_the_link_to_its_own_base():
    resolution = run(["a[x]"], MemoryIndex(EXTRAS))

    assert resolution.why["a"] == ((None, "a[x]"),)
    assert resolution.why["c"] == (("a==1.0", 'c; extra == "x"'),)


# -- asking ahead ------------------------------------------------------------------------------
class PrefetchingIndex(MemoryIndex):
    """A MemoryIndex that notes, in one list with what it is asked, what the resolver says it
    will ask for next."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[str] = []

    def prefetch(self, names, candidate=None) -> None:
        self.events += [f"announced files of {canonicalize_name(n)}" for n in names]
        if candidate is not None:
            self.events.append(f"announced dependencies of {candidate.name}=={candidate.version}")

    def project_files(self, name):
        self.events.append(f"asked files of {canonicalize_name(name)}")
        return super().project_files(name)

    def dependencies(self, candidate):
        self.events.append(f"asked dependencies of {candidate.name}=={candidate.version}")
        return super().dependencies(candidate)


def test_the_resolver_announces_the_projects_and_dependencies_it_will_ask_for_next():
    index = PrefetchingIndex({"app": {"1.0": ["Lib>=1"]}, "lib": {"1.0": [], "2.0": []}})
    assert versions(run(["app"], index)) == {"app": "1.0", "lib": "2.0"}
    events = index.events
    for what in ("dependencies of app==1.0", "files of lib", "dependencies of lib==2.0"):
        assert events.index(f"announced {what}") < events.index(f"asked {what}")


def test_a_finder_that_cannot_prefetch_is_only_asked_what_resolution_needs():
    index = MemoryIndex({"app": {"1.0": ["lib"]}, "lib": {"1.0": []}})
    assert versions(run(["app"], index)) == {"app": "1.0", "lib": "1.0"}
    assert index.dependencies_asked == ["app==1.0", "lib==1.0"]
