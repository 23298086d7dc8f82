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


# imported by featevo, but only inside functions that no job calls, and installed with the workflow
OUTSIDE_JOBS = {"snakemake": "config.settings.load_config, for callers outside the workflow (the benchmark)"}


def third_party_imports() -> dict[str, dict[str, bool]]:
    """Each third-party package that workflow/featevo/*.py imports (its top-level name) ->
    {module file: whether it is imported at the module's top level}."""
    import ast
    import sys

    found: dict[str, dict[str, bool]] = {}
    for path in sorted((ROOT / "workflow" / "featevo").rglob("*.py")):
        tree = ast.parse(path.read_text())
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                pkg = name.split(".")[0]
                if pkg not in sys.stdlib_module_names and pkg != "featevo":
                    seen = found.setdefault(pkg, {})
                    seen[str(path.relative_to(ROOT))] = seen.get(str(path.relative_to(ROOT)), False) or id(node) in top_level
    return found


def test_every_package_a_job_imports_is_installed_by_pip_and_by_conda():
    """A plain `pip install .` and `--sdm conda` jobs import what workflow/featevo imports
    (PyYAML and jsonschema were missing once): each third-party import, by its distribution's
    name, is in pyproject.toml's dependencies and in envs/featevo.yaml."""
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {name_and_pin(r)[0] for r in project["dependencies"]}
    env = yaml.safe_load((ROOT / "envs" / "featevo.yaml").read_text())
    conda = {name_and_pin(r)[0] for r in next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))}
    dists = packages_distributions()
    imports = third_party_imports()
    assert {"yaml", "jsonschema", "torch", "PIL"} <= set(imports)  # the scan sees what is there
    for pkg, where in imports.items():
        names = {d.lower().replace("_", "-") for d in dists.get(pkg, [pkg])}
        if pkg in OUTSIDE_JOBS:
            assert not any(where.values()), f"{pkg} is imported at the top of {where}: every job would need it"
            workflow = {name_and_pin(r)[0] for r in project["optional-dependencies"]["workflow"]}
            assert names & {re.sub(r"\[.*\]", "", n) for n in workflow}, pkg
            continue
        assert names & deps, f"{pkg} (imported by {sorted(where)}) is not in pyproject.toml's dependencies"
        assert names & conda, f"{pkg} (imported by {sorted(where)}) is not in envs/featevo.yaml"
