"""files.remove_tree: folders go whole (by rm in a process of its own), missing ones are no
error, and nothing beside them is touched. remove_tree_later: the folder is out of the way at
once and gone soon after, without the caller waiting for rm."""

import time

from mirror_builder.files import remove_tree, remove_tree_later


def test_folders_go_whole_and_their_neighbours_stay(tmp_path):
    for folder in ("a/deep/er", "b"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "file.txt").write_text("x")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "keep")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious").write_text("kept")

    remove_tree(tmp_path / "a", tmp_path / "b", tmp_path / "never-was")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    assert (tmp_path / "keep" / "precious").read_text() == "kept"  # a link is not followed


def test_a_tree_removed_later_is_out_of_the_way_at_once_and_gone_soon(tmp_path):
    work = tmp_path / "work"
    run = work / "123-456"
    (run / "src" / "deep").mkdir(parents=True)
    (run / "src" / "deep" / "file.txt").write_text("x")
    (work / "789-000").mkdir()  # another run's, still at work

    remove_tree_later(run)

    assert not run.exists()  # renamed away before the call returns
    assert (work / "789-000").is_dir()
    deadline = time.monotonic() + 10
    while list(work.glob(".trash-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(p.name for p in work.iterdir()) == ["789-000"]


def test_trash_an_earlier_removal_left_goes_with_the_next_one(tmp_path):
    work = tmp_path / "work"
    (work / ".trash-1-2-3" / "left").mkdir(parents=True)  # its rm was killed
    (work / "run").mkdir()

    remove_tree_later(work / "run")

    deadline = time.monotonic() + 10
    while any(work.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(work.iterdir())


def test_a_tree_that_is_not_there_is_no_error(tmp_path):
    remove_tree_later(tmp_path / "never-was")
