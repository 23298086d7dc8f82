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


def test_the_lock_pins_every_requirement_with_hashes():
    """requirements.lock (make install) holds every direct requirement of pyproject.toml, at
    a version its specifier allows, and every package in it with at least one hash."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = [*project["dependencies"], *project["optional-dependencies"]["workflow"],
              *project["optional-dependencies"]["test"]]
    text = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", text, re.M))
    pins = {re.sub(r"\[.*\]", "", k).lower().replace("_", "-"): v for k, v in pins.items()}
    for spec in direct:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name], str(req.specifier))
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert all("--hash=sha256:" in b for b in blocks if "==" in b), "a package without a hash"
    assert len(pins) > 50
