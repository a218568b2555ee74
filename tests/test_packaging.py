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


def test_the_readme_says_what_the_test_command_installs_and_where_ivr_is(project_home):
    """A newcomer follows the README: every Debian package ``./run test``
    installs is named there (it said "venv, ffmpeg, espeak-ng" while Chromium
    and a CJK font came too), and so is every test tool of pyproject's extras;
    and it says where the ``ivr`` command is (``.venv/bin``, not on PATH)."""
    import re
    import tomllib

    readme = (project_home / "README.md").read_text(encoding="utf-8")
    installs = re.findall(r"missing\+=\(([^)]+)\)", (project_home / "run").read_text(encoding="utf-8"))
    assert installs and all(f"`{name}`" in readme for name in installs), installs
    extras = tomllib.loads((project_home / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"]
    tools = [re.split(r"[<>=\[ ]", req, maxsplit=1)[0] for req in extras["test"] + extras["fast"]]
    assert all(f"`{name}`" in readme for name in tools), [t for t in tools if f"`{t}`" not in readme]
    assert ".venv/bin/ivr" in readme
