"""`./run test` installs the project quietly: the packaging config gives setuptools
nothing to warn about (about 50 warning lines came from these two causes)."""

import tomllib


def test_pyproject_gives_setuptools_nothing_to_warn_about(project_home):
    cfg = tomllib.loads((project_home / "pyproject.toml").read_text(encoding="utf-8"))
    # PEP 639: a license table is deprecated (three warnings per build); an SPDX string needs setuptools >= 77
    assert cfg["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in cfg["build-system"]["requires"]
    # a package at the top of the project, said so: a plain .pth editable install,
    # not the import-hook finder that warns about same-named folders
    assert cfg["tool"]["setuptools"]["package-dir"] == {"": "."}
