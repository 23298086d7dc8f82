"""Run the workflow's Snakefile from a test, in a folder of the test's own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(workdir: Path, *args: str, configs=(), check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2"]
    if configs:
        cmd += ["--configfile", *map(str, configs)]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def tiny_with(workdir: Path, own: str, *extra: Path, args=(), check: bool = True) -> subprocess.CompletedProcess:
    """The whole DAG at toy size (tests/configs/tiny.yaml over config.yaml), then the
    ``extra`` config files, then ``own`` (a config file's text), in ``workdir``; ``args``:
    Snakemake's own (targets, ``-n``)."""
    import shutil

    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    (workdir / "own.yaml").write_text(own)
    return snakemake(workdir, *args, configs=[ROOT / "tests" / "configs" / "tiny.yaml", *extra, workdir / "own.yaml"],
                     check=check)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run as {rule: count}."""
    counts = {}
    block = output.split("Job stats:", 1)[-1] if "Job stats:" in output else ""
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts
