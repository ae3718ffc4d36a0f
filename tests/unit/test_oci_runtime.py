"""Which OCI runtime the podman service is told to use: crun wherever the cgroup layout lets it
start containers (it is the quicker one), runc otherwise."""

import shutil

import pytest

from mirror_builder.sandbox import serviceprocess
from mirror_builder.sandbox.serviceprocess import oci_runtime


@pytest.fixture
def crun_installed(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")


def test_cgroup2_alone_is_crun(tmp_path, crun_installed):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    assert oci_runtime(tmp_path) == "crun"


def test_a_hybrid_layout_with_a_controller_on_its_cgroup2_hierarchy_is_runc(tmp_path,
                                                                            crun_installed):
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert oci_runtime(tmp_path) == "runc"


def test_a_hybrid_layout_whose_controllers_are_all_on_v1_is_crun(tmp_path, crun_installed):
    """What ./setup.sh makes of this kind of machine: hugetlb moved to a v1 hierarchy."""
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("\n")
    (tmp_path / "memory").mkdir()
    assert oci_runtime(tmp_path) == "crun"


def test_without_crun_it_is_runc(tmp_path, monkeypatch):
    monkeypatch.setattr(serviceprocess.shutil, "which", lambda name: None)
    (tmp_path / "cgroup.controllers").write_text("cpu\n")
    assert oci_runtime(tmp_path) == "runc"
