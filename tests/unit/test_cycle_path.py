"""How a build cycle is named: every package in it, in the order one needs the next, from where
the chain of requirements entered it and back to that package."""

from packaging.version import Version

from mirror_builder.engine.decisions import cycle_error, cycle_path
from mirror_builder.resolve.resolver import Candidate


def candidate(pin: str) -> Candidate:
    name, version = pin.split("==")
    return Candidate(name, Version(version), None)


def test_two_builds_that_need_each_other():
    assert cycle_path(["a==1", "b==1"], ("a==1", "b==1"), candidate("a==1")) == \
        ["a==1", "b==1", "a==1"]


def test_a_build_environment_that_installs_the_package_being_built_shows_the_installer():
    # pygments-ext build-requires lab; lab installs pygments-ext: the wait is pygments-ext on
    # itself, the chain knows lab in between.
    assert cycle_path(["pygments-ext==0.3"], ("pygments-ext==0.3", "lab==4.0"),
                      candidate("pygments-ext==0.3")) == \
        ["pygments-ext==0.3", "lab==4.0", "pygments-ext==0.3"]


def test_the_chain_entered_the_cycle_elsewhere_than_where_it_was_noticed():
    # app needs a; a's build waits on b, b's on c, c's on a; noticed while ensuring b.
    assert cycle_path(["a==1", "b==1", "c==1"], ("app==1", "a==1"), candidate("b==1")) == \
        ["a==1", "b==1", "c==1", "a==1"]


def test_a_chain_that_never_met_the_cycle_names_the_ring_alone():
    assert cycle_path(["x==1", "y==1"], ("app==1",), candidate("z==1")) == \
        ["x==1", "y==1", "x==1"]


def test_the_error_names_the_package_the_cycle_and_the_ways_out():
    error = cycle_error(["a==1", "b==1"], ("a==1", "b==1"), candidate("a==1"))
    assert str(error).startswith("a==1: build dependencies form a cycle: a==1 -> b==1 -> a==1.")
    assert "Break it in stages: give one of them a bootstrap_stage override" in str(error)
    assert "bootstrap_stage: {remove: [b]} in a.yaml" in str(error)
    assert "constrain one of them (-c)" in str(error)
    assert "as a last resort, take one pre-built (pre_built: true)" in str(error)


def test_each_step_names_its_kind_and_requirement_where_it_is_known():
    edges = {("pygments-ext==0.3", "lab==4.0"): ("build-system", "lab>=4"),
             ("lab==4.0", "pygments-ext==0.3"): ("install", "pygments-ext>=0.3")}
    error = cycle_error(["pygments-ext==0.3"], ("pygments-ext==0.3", "lab==4.0"),
                        candidate("pygments-ext==0.3"), edges)
    assert "pygments-ext==0.3 -[build-system: lab>=4]-> lab==4.0 -[install: pygments-ext>=0.3]-> " \
           "pygments-ext==0.3." in str(error)


def test_the_suggested_stage_leaves_out_a_build_requirement_not_an_install_one():
    edges = {("lab==4.0", "pygments-ext==0.3"): ("install", "pygments-ext>=0.3"),
             ("pygments-ext==0.3", "lab==4.0"): ("build-system", "lab>=4")}
    error = cycle_error(["lab==4.0", "pygments-ext==0.3"], ("lab==4.0", "pygments-ext==0.3"),
                        candidate("lab==4.0"), edges)
    assert "bootstrap_stage: {remove: [lab]} in pygments-ext.yaml" in str(error)
