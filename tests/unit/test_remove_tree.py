"""files.remove_tree: folders go whole (by rm in a process of its own), missing ones are no
error, and nothing beside them is touched."""

from mirror_builder.files import remove_tree


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
