"""The README's commands run as written (those that need neither ImageNet nor a cluster).

`make run` and `make test` are what a new user and CI run; the paper's and the
cluster's commands need ImageNet or SLURM (tests/test_slurm.py dry-runs the
paper DAG through the profile).  Every other `sh` block and every inline
`--config` override runs here against the session's toy run.
"""

import re
import shlex
from pathlib import Path

import pytest

from snakemake_helpers import ROOT, snakemake

README = (ROOT / "README.md").read_text()
NEEDS_IMAGENET_OR_CLUSTER = ("configs/paper.yaml", "profiles/slurm", "SBATCH_PARTITION")
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
# run at toy size by tests/test_architectures.py (its full size takes the demo's minutes)
RUN_ELSEWHERE = ("configs/resnet-demo.yaml",)


def commands():
    out = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line)
    return out


def test_the_readme_has_the_commands_this_test_knows():
    cmds = commands()
    assert {"make run", "make test", "make report"} <= set(cmds)


def test_make_report_writes_the_report_of_the_run_its_configs_name(tiny_run):
    """`make report` is `snakemake --report results/<run_name>/report.html` with the run's
    config files (make -n, with the environment that runs the tests: nothing is installed)."""
    import subprocess
    import sys

    venv = Path(sys.executable).parents[1]
    line = subprocess.run(["make", "-s", "-n", "report", f"VENV={venv}", "CONFIG=tests/configs/tiny.yaml"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.replace("\\\n", " ").splitlines()[-1]
    args = shlex.split(line)
    args = args[[i for i, a in enumerate(args) if a.endswith("/snakemake")][0] + 1:]
    assert args == ["--configfile", "tests/configs/tiny.yaml", "--report", "results/tiny/report.html"]
    workdir, _, _ = tiny_run
    assert snakemake(workdir, "--configfile", str(ROOT / args[1]), *args[2:]).returncode == 0
    assert (workdir / "results" / "tiny" / "report.html").stat().st_size > 10_000


def test_every_snakemake_command_of_the_readme_is_run_by_a_test():
    """The README's snakemake commands need ImageNet or a cluster (the paper's: dry-run through
    the profile by tests/test_slurm.py, run at full size by tests/test_paper_full.py on a fake
    ImageNet) or run elsewhere at toy size; a new command must find its test."""
    cmds = [c for c in commands() if c.startswith(".venv/bin/snakemake")]
    assert cmds
    untested = [c for c in cmds if not any(k in c for k in NEEDS_IMAGENET_OR_CLUSTER + RUN_ELSEWHERE)]
    assert not untested, f"README commands no test runs: {untested}"


OVERRIDES = sorted(set(re.findall(r'--config ((?:"[^"]+"|\S+)(?: (?:"[^"]+"|[a-z_]+=\S+))*)', README)))


def test_the_readme_shows_overrides():
    assert any("keep_checkpoints: false" in o for o in OVERRIDES), OVERRIDES


@pytest.mark.parametrize("override", [o for o in OVERRIDES if "imagenet" not in o and "weights" not in o])
def test_an_inline_override_of_the_readme_is_accepted(tiny_run, override):
    workdir, _, _ = tiny_run
    proc = snakemake(workdir, "-n", "--configfile", str(TINY), "--config", *shlex.split(override.rstrip("`.,:")),
                     check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_make_clean_deletes_the_demo_and_keeps_every_other_run_saying_so(tmp_path):
    """make clean once deleted results/ whole, the paper's checkpoints (tens of GB) included."""
    import subprocess

    for run in ("demo", "paper", "mine"):
        (tmp_path / "results" / run / "train").mkdir(parents=True)
    (tmp_path / ".snakemake").mkdir()
    out = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "clean"], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert not (tmp_path / "results" / "demo").exists() and not (tmp_path / ".snakemake").exists()
    assert (tmp_path / "results" / "paper" / "train").is_dir() and (tmp_path / "results" / "mine").is_dir()
    assert "kept results/paper/ (a run of its own: rm -r results/paper/ deletes it)" in out


def test_make_run_takes_config_and_cores():
    import subprocess
    import sys

    venv = Path(sys.executable).parents[1]
    line = subprocess.run(["make", "-s", "-n", "run", f"VENV={venv}", "CONFIG=configs/resnet-demo.yaml", "CORES=3"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    assert line.endswith("/snakemake --cores 3 --configfile configs/resnet-demo.yaml"), line
