"""environment.yml (conda) and pyproject.toml (pip) must list the same Python dependencies."""
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _normalise(req: str) -> str:
    return req.replace(" ", "").lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    conda_pip = {d for d in pip_sections[0] if not d.startswith("-e")}
    assert {_normalise(d) for d in conda_pip} == {_normalise(d) for d in pip_deps}


def test_torch_is_pinned():
    # An unpinned torch pulls a multi-GB CUDA build on a CPU machine.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.replace(" ", "").startswith("torch==") for d in project["dependencies"])
