"""envs/featevo.yaml (for --sdm conda) must install what pyproject.toml declares."""

import re
import tomllib

import yaml

from snakemake_helpers import ROOT


def name_and_pin(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_conda_env_matches_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(name_and_pin(r) for r in project["dependencies"])
    env = yaml.safe_load((ROOT / "envs" / "featevo.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    have = dict(name_and_pin(r) for r in pip)
    assert have == wanted
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    floor = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, floor.split(".")))
