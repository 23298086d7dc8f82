# Stage 2: epoch 0, then one job per epoch (e-1 -> e), and the reference network.
# Chained per-epoch jobs: a killed job loses at most one epoch, epoch e is
# visualized while e+1 trains, and raising `epochs` continues a finished run.
# Training is the critical path, so it has priority over visualization, unless
# checkpoints are temporary: then visualizing (and deleting) them keeps pace.

TRAIN_CFG = config["train"]


wildcard_constraints:
    exp="|".join(EXPERIMENTS),
    epoch="(?!000)[0-9]{3}",
    seed="[0-9]+",


# The networks trained here beside the experiments, in one recipe (reference.*):
# the demo's reference (Fig. 3, and the pretrained experiments' initialization) and
# the judge of the metrics (another architecture, seed and images).
TRAINED_NETWORKS = [
    net
    for net, trained in (
        ("reference", config["reference"]["source"] == "train"),
        ("judge", JUDGE_TRAINED),
    )
    if trained
]

if TRAINED_NETWORKS:

    rule train_network:
        input:
            train=lambda w: path("images", subset=w.net, split="train"),
            # its classes, in label order
            manifest=lambda w: path("manifest", subset=w.net),
        output:
            ckpt=PATHS["network"],
            metrics=PATHS["network_metrics"],
        log:
            logfile("train_{net}"),
        benchmark:
            benchmark_file("train_{net}")
        wildcard_constraints:
            net="|".join(TRAINED_NETWORKS),
        priority: 20
        conda:
            ENV
        threads: lambda w: config[w.net]["threads"]
        resources:
            gpu=TRAIN_GPUS,
        params:
            data=folder_of("train"),
            settings=lambda w: settings_of(f"train {w.net}")(w),
        shell:
            stage("train")
            + " reference --net {wildcards.net} --data {params.data} --out {output.ckpt}"
            " --metrics {output.metrics} --settings {params.settings:q} --threads {threads} > {log} 2>&1"


if config["reference"]["source"] != "train":

    rule import_reference:
        output:
            ckpt=path("network", net="reference"),
            metrics=path("network_metrics", net="reference"),
        log:
            logfile("import_reference"),
        localrule: True
        conda:
            ENV
        params:
            settings=settings_of("weights"),
        shell:
            stage("weights")
            + " --settings {params.settings:q} --out {output.ckpt} --metrics {output.metrics} > {log} 2>&1"


rule init_model:
    input:
        unpack(init_inputs),
    output:
        ckpt=checkpoint_output(path("checkpoint", epoch=0)),
        metrics=path("epoch_metrics", epoch=0),
    log:
        logfile("train/{exp}/seed{seed}/epoch_000"),
    benchmark:
        benchmark_file("train/{exp}/seed{seed}/epoch_000")
    wildcard_constraints:
        exp=TRAINED_EXP,
    priority: TRAIN_PRIORITY
    group:
        run_group
    conda:
        ENV
    threads: TRAIN_CFG["threads"]
    resources:
        gpu=TRAIN_GPUS,
    params:
        data=folder_of("val"),
        source=lambda w, input: (
            f"--from-checkpoint {input.reference}"
            if "reference" in input.keys()
            else ""
        ),
        settings=settings_of("train init"),
    shell:
        stage("train")
        + " init --data {params.data} --out {output.ckpt} --metrics {output.metrics}"
        " --seed {wildcards.seed} {params.source} --settings {params.settings:q}"
        " --threads {threads} > {log} 2>&1"


rule train_epoch:
    input:
        unpack(epoch_inputs),
        train=path("images", subset="main", split="train"),
    output:
        ckpt=checkpoint_output(PATHS["checkpoint"]),
        # the Adadelta state the epoch ended with: the next epoch's input, so that a
        # rerun of any epoch continues exactly as the first run did
        optim=optimizer_output(PATHS["optimizer"]),
        metrics=PATHS["epoch_metrics"],
    log:
        logfile("train/{exp}/seed{seed}/epoch_{epoch}"),
    benchmark:
        benchmark_file("train/{exp}/seed{seed}/epoch_{epoch}")
    wildcard_constraints:
        exp=TRAINED_EXP,
    priority: TRAIN_PRIORITY
    group:
        run_group
    conda:
        ENV
    threads: TRAIN_CFG["threads"]
    resources:
        gpu=TRAIN_GPUS,
    params:
        data=folder_of("train"),
        settings=settings_of("train epoch", exp=lambda w: w.exp),
        state=lambda w, input: (
            f"--previous-optim {input.previous_optim}"
            if "previous_optim" in input.keys()
            else ""
        ),
    shell:
        stage("train")
        + " epoch --experiment {wildcards.exp} --data {params.data} --previous {input.previous} {params.state}"
        " --out {output.ckpt} --optim-out {output.optim} --metrics {output.metrics} --seed {wildcards.seed}"
        " --settings {params.settings:q} --threads {threads} > {log} 2>&1"


# Your own training run (experiments.*.checkpoints): each of its checkpoints becomes
# one of ours, its accuracy evaluated on the validation split; nothing is trained.
# Its files reach the jobs through the environment, what they hold through a parameter
# (imported_env, in common.smk): a run folder copied or moved reruns nothing.
rule import_checkpoint:
    input:
        val=path("images", subset="main", split="val"),
        manifest=path("manifest", subset="main"),
    output:
        ckpt=PATHS["checkpoint"],
        metrics=PATHS["epoch_metrics"],
    log:
        logfile("train/{exp}/seed{seed}/epoch_{epoch}"),
    benchmark:
        benchmark_file("train/{exp}/seed{seed}/epoch_{epoch}")
    wildcard_constraints:
        exp=IMPORTED_EXP,
        epoch="[0-9]{3}",
    group:
        run_group
    conda:
        ENV
    threads: TRAIN_CFG["threads"]
    resources:
        gpu=TRAIN_GPUS,
    params:
        data=folder_of("val"),
        settings=settings_of("train import"),
        checkpoints=lambda w: f'"${imported_env(w.exp)}"',
        content=imported_content,
    shell:
        stage("train")
        + " import --checkpoints {params.checkpoints} --epoch {wildcards.epoch} --data {params.data} --out {output.ckpt}"
        " --metrics {output.metrics} --seed {wildcards.seed}"
        " --settings {params.settings:q} --threads {threads} > {log} 2>&1"


rule history:
    input:
        lambda w: [metrics(w.exp, e, w.seed) for e in epochs(w.exp)],
    output:
        report(
            PATHS["history"],
            caption="../report/history.rst",
            category="Training",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "seed": "{seed}"},
        ),
    log:
        logfile("train/{exp}/seed{seed}/history"),
    localrule: True
    conda:
        ENV
    params:
        settings=settings_of("tables history"),
    shell:
        stage("tables")
        + " history --metrics {input} --out {output} --settings {params.settings:q} > {log} 2>&1"
