"""What a smoke test imports from a wheel: its public top-level modules. Stdlib only: the host
reads a staged wheel with it, and the build container's driver a wheel it just built (copied in
as /mb/lib/mb_toplevel.py), so both name the same modules."""

import zipfile

# Top-level packages that hold a project's own tests or docs: importing them needs test tools.
NOT_IMPORTED = frozenset({"test", "tests", "testing", "docs", "doc", "examples", "example",
                          "benchmarks", "scripts"})


def top_level_modules(wheel):
    """What a user would import: the public modules at the top of the wheel's tree, narrowed to
    top_level.txt when the wheel has one. top_level.txt alone is not enough: setuptools lists
    there what the project declares, also an optional extension that was not built."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        in_tree = set()
        for name in names:
            top = name.split("/", 1)[0]
            if top.endswith((".dist-info", ".data")):
                continue
            if "/" in name:
                # A folder whose name has a dot is no package (auditwheel's <name>.libs/).
                if "." not in top:
                    in_tree.add(top)
            elif name.endswith(".py"):
                in_tree.add(top[:-3])
            elif name.endswith((".so", ".pyd")):
                in_tree.add(top.split(".", 1)[0])
        listed = [n for n in names if n.count("/") == 1 and n.endswith(".dist-info/top_level.txt")]
        declared = set(archive.read(listed[0]).decode("utf-8", "replace").split()) if listed else set()
    modules = {m.replace("/", ".") for m in (declared & in_tree or in_tree)}
    modules = {m for m in modules if all(part.isidentifier() for part in m.split("."))
               and m not in NOT_IMPORTED}
    # Private top-level modules (_cffi_backend, _yaml) are what the public ones import, and
    # some are shims for an optional extension that was not built: imported only when the wheel
    # has nothing public.
    public = {m for m in modules if not m.startswith("_")}
    return tuple(sorted(public or modules))
