"""The set-up files agree: environment.yml lists what pyproject.toml asks for."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}          # pip name → conda-forge name


def requirement_name_and_spec(req: str):
    name, spec = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req).groups()
    return name.lower(), spec.replace(" ", "")


def conda_dependencies():
    deps = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"^  - ([A-Za-z0-9_.\-]+)\s*([<>=!].*)?$", line)
        if m:
            deps[m.group(1).lower()] = (m.group(2) or "").replace(" ", "")
    return deps


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    conda = conda_dependencies()
    for req in wanted:
        name, spec = requirement_name_and_spec(req)
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda, f"environment.yml lacks {conda_name} (pyproject asks for {req})"
        assert conda[conda_name] == spec, f"{conda_name}: environment.yml has {conda[conda_name]!r}, pyproject {spec!r}"
    extra = set(conda) - {CONDA_NAMES.get(requirement_name_and_spec(r)[0], requirement_name_and_spec(r)[0])
                          for r in wanted} - {"python", "pip"}
    assert not extra, f"environment.yml lists packages pyproject.toml does not: {sorted(extra)}"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
