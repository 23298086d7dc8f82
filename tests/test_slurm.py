"""The tiny DAG through profiles/slurm on a real single-node SLURM.

.ci/run installs Debian's SLURM, munge and MariaDB; tests/slurm/start.sh starts
them on loopback (as root) and stop.sh stops them by pid.  Where they are not
installed (a developer's machine), the test is skipped with the reason.
"""

import os
import re
import shutil
import subprocess
import time

import pytest

from snakemake_helpers import ROOT, job_counts, snakemake

pytestmark = pytest.mark.skipif(
    shutil.which("slurmctld") is None or os.geteuid() != 0,
    reason="needs root and Debian's slurmctld slurmd slurm-client slurmdbd munge mariadb-server (.ci/run installs them)",
)


def rules_marked(directive):
    """The rules whose definition in workflow/rules/*.smk holds the directive."""
    found = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for name, body in re.findall(r"(?ms)^ *rule (\w+):\n(.*?)(?=^ *rule |\Z)", smk.read_text()):
            if re.search(rf"^ +{re.escape(directive)}", body, re.M):
                found.add(name)
    return found


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    start = subprocess.run([str(ROOT / "tests" / "slurm" / "start.sh"), str(folder)], capture_output=True, text=True,
                           timeout=180)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(folder / "slurm.conf")  # sbatch, sacct, squeue read it
        yield folder
    finally:
        if old := locals().get("old"):
            os.environ["SLURM_CONF"] = old
        else:
            os.environ.pop("SLURM_CONF", None)
        subprocess.run([str(ROOT / "tests" / "slurm" / "stop.sh"), str(folder)], timeout=60)


def test_tiny_dag_runs_as_slurm_jobs_that_complete(slurm, tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    # two seeds of one experiment and the sanity check's control alone: each submission is
    # Snakemake's start-up around its jobs (the whole tiny DAG, each job its own submission, took
    # 10 minutes). The second seed's group (no methods, no inner units) is the case where the
    # submitter and the job once sized a group differently and SLURM refused its job step
    # (docs/operations.md): every grouped job now asks for all of the submission's cores
    (tmp_path / "cpu.yaml").write_text("train: {device: cpu}\nvisualize: {device: cpu}\n"
                                       "methods: {device: cpu}\nseeds: [0, 1]\nsanity: {levels: [all]}\n"
                                       "experiments: {frozen: null, pretrained: null}\n")
    since = time.strftime("%Y-%m-%dT%H:%M:%S")  # accounting keeps earlier runs' jobs
    proc = snakemake(tmp_path, "--profile", str(ROOT / "profiles" / "slurm"),
                     "--slurm-init-seconds-before-status-checks", "1", "--jobs", "4",
                     configs=[ROOT / "tests" / "configs" / "tiny.yaml", tmp_path / "cpu.yaml"], check=False)
    log = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, log
    run = tmp_path / "results" / "tiny"
    for name in ("fig1.png", "fig3.png", "learning_curves.pdf"):  # no pretrained: no Fig. 2
        assert (run / "figures" / name).is_file()
    # every submission ended COMPLETED (the plugin names jobs after the workflow run and puts the
    # rule, or group_<name> for a group of jobs, in the job's comment)
    acct = subprocess.run(["sacct", "-X", "-n", "-P", "-S", since, "-o", "JobID,State,Comment,AllocCPUS"],
                          capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in acct.splitlines() if line]
    assert {state for _, state, _, _ in rows} == {"COMPLETED"}, acct
    # a group got the CPUs its jobs ask for inside it: each all of --cores (2), one at a time
    assert {cpus for _, _, comment, cpus in rows if re.search(r"-seed\d+-part\d+_", comment)} == {"2"}, acct
    # a group's comment: rule_<group>_<its rules>; a job's: rule_<rule>[_wildcards_...]
    submitted = [re.sub(r"^(.+?-seed\d+-part\d+)_.*", r"\1", comment.removeprefix("rule_").split("_wildcards")[0])
                 for _, _, comment, _ in rows]
    # each experiment and seed's epochs, visualizations and methods went as one submission; the
    # figures, tables and histories ran on the submitting host; the rest one submission per job
    ran = job_counts(proc.stderr) or job_counts(proc.stdout)  # a run logs to stderr, a dry run to stdout
    local, grouped = rules_marked("localrule: True"), rules_marked("group:")
    assert {"train_epoch", "visualize", "evolution_figure", "accuracy_table"} <= set(ran), ran
    assert grouped == {"init_model", "train_epoch", "import_checkpoint", "visualize", "visualize_units",
                       "atlas_render", "explain"}, grouped
    expected = sorted(["scratch-seed0-part0", "scratch-seed1-part0"] + [
        rule for rule, n in ran.items() for _ in range(n) if rule not in local | grouped | {"all"}])
    assert sorted(submitted) == expected, (submitted, ran)
    assert len(submitted) < sum(ran.values()) / 2, (len(submitted), ran)  # as the docs say: under half
    # job logs in the profile's known place
    assert list((tmp_path / "results" / "slurm_logs").rglob("*.log"))


def test_paper_dry_run_through_the_profile_asks_gpus_for_gpu_rules_only(slurm, tmp_path):
    imagenet = tmp_path / "imagenet"
    for wnid in ("n01644373", "n02007558", "n07697313", "n03982430"):
        (imagenet / wnid).mkdir(parents=True)
        for i in range(1300):
            (imagenet / wnid / f"{wnid}_{i}.JPEG").touch()
    weights = tmp_path / "vgg16-397923af.pth"
    weights.write_bytes(b"a dry run reads no more than its size")
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "-n", "--profile", str(ROOT / "profiles" / "slurm"), "--config",
                     f"data={{imagenet: {imagenet}}}", f"reference={{weights: {weights}}}",
                     configs=[ROOT / "configs" / "paper.yaml"])
    gpu_of = {}
    for block in proc.stdout.split("\n\n"):
        rule = next((line.split()[-1].rstrip(":") for line in block.splitlines()
                     if line.strip().startswith(("rule ", "localrule "))), None)
        res = next((line for line in block.splitlines() if "resources:" in line), "")
        if rule:
            gpu_of.setdefault(rule, set()).add("gpu=1" in res)
    assert gpu_of["train_epoch"] == gpu_of["visualize"] == gpu_of["init_model"] == gpu_of["explain"] == {True}
    assert gpu_of["extract_subset"] == gpu_of["accuracy_table"] == gpu_of["import_reference"] == {False}
    assert gpu_of["feature_metrics"] == gpu_of["method_figure"] == gpu_of["animation"] == {False}
