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


if config["reference"]["source"] == "train":

    rule train_reference:
        input:
            train=f"{RUN}/data/reference/train_images.npy",
        output:
            ckpt=f"{RUN}/reference/model.pt",
            metrics=f"{RUN}/reference/model.json",
        log:
            logfile("train_reference"),
        benchmark:
            benchmark_file("train_reference")
        priority: 20
        conda:
            ENV
        threads: config["reference"]["threads"]
        resources:
            gpu=TRAIN_GPUS,
        params:
            data=folder_of("train"),
            classes=reference_wnids(),
            seed=FIRST_SEED,
            recipe=cli.reference(config),
            runtime=cli.runtime(TRAIN_CFG),
        shell:
            stage("train") + " reference --data {params.data} --out {output.ckpt}"
            " --metrics {output.metrics} --classes {params.classes} --seed {params.seed}"
            " {params.recipe} {params.runtime} --threads {threads} > {log} 2>&1"


if JUDGE_TRAINED:

    rule train_judge:
        input:
            train=f"{RUN}/data/judge/train_images.npy",
        output:
            ckpt=f"{RUN}/judge/model.pt",
            metrics=f"{RUN}/judge/model.json",
        log:
            logfile("train_judge"),
        benchmark:
            benchmark_file("train_judge")
        conda:
            ENV
        threads: config["judge"]["threads"]
        resources:
            gpu=TRAIN_GPUS,
        params:
            data=folder_of("train"),
            classes=WNIDS,
            seed=config["judge"]["seed"],
            recipe=cli.reference(config, judge=True),
            runtime=cli.runtime(TRAIN_CFG),
        shell:
            stage("train") + " reference --data {params.data} --out {output.ckpt}"
            " --metrics {output.metrics} --classes {params.classes} --seed {params.seed}"
            " {params.recipe} {params.runtime} --threads {threads} > {log} 2>&1"


if config["reference"]["source"] != "train":

    rule import_reference:
        output:
            ckpt=f"{RUN}/reference/model.pt",
            metrics=f"{RUN}/reference/model.json",
        log:
            logfile("import_reference"),
        localrule: True
        conda:
            ENV
        params:
            weights=config["reference"].get("weights") or "",
            sha256=config["reference"]["sha256"],
        shell:
            stage("weights") + " --weights '{params.weights}' --sha256 {params.sha256}"
            " --out {output.ckpt} --metrics {output.metrics} > {log} 2>&1"


rule init_model:
    input:
        unpack(init_inputs),
    output:
        ckpt=checkpoint_output(f"{RUN}/train/{{exp}}/seed{{seed}}/epoch_000.pt"),
        metrics=f"{RUN}/train/{{exp}}/seed{{seed}}/epoch_000.json",
    log:
        logfile("train/{exp}/seed{seed}/epoch_000"),
    benchmark:
        benchmark_file("train/{exp}/seed{seed}/epoch_000")
    priority: TRAIN_PRIORITY
    conda:
        ENV
    threads: TRAIN_CFG["threads"]
    resources:
        gpu=TRAIN_GPUS,
    params:
        data=folder_of("val"),
        classes=WNIDS,
        source=lambda w, input: (
            f"--from-checkpoint {input.reference}"
            if "reference" in input.keys()
            else ""
        ),
        model=cli.model(config),
        runtime=cli.runtime(TRAIN_CFG),
    shell:
        stage("train")
        + " init --data {params.data} --out {output.ckpt} --metrics {output.metrics}"
        " --classes {params.classes} --seed {wildcards.seed} {params.source} {params.model} {params.runtime}"
        " --threads {threads} > {log} 2>&1"


rule train_epoch:
    input:
        unpack(epoch_inputs),
        train=f"{RUN}/data/main/train_images.npy",
    output:
        ckpt=checkpoint_output(f"{RUN}/train/{{exp}}/seed{{seed}}/epoch_{{epoch}}.pt"),
        # the Adadelta state the epoch ended with: the next epoch's input, so that a
        # rerun of any epoch continues exactly as the first run did
        optim=optimizer_output(
            f"{RUN}/train/{{exp}}/seed{{seed}}/epoch_{{epoch}}.optim.pt"
        ),
        metrics=f"{RUN}/train/{{exp}}/seed{{seed}}/epoch_{{epoch}}.json",
    log:
        logfile("train/{exp}/seed{seed}/epoch_{epoch}"),
    benchmark:
        benchmark_file("train/{exp}/seed{seed}/epoch_{epoch}")
    priority: TRAIN_PRIORITY
    conda:
        ENV
    threads: TRAIN_CFG["threads"]
    resources:
        gpu=TRAIN_GPUS,
    params:
        data=folder_of("train"),
        optim=cli.epoch(config),
        runtime=cli.runtime(TRAIN_CFG),
        state=lambda w, input: (
            f"--previous-optim {input.previous_optim}"
            if "previous_optim" in input.keys()
            else ""
        ),
        augment=TRAIN_CFG["augment"],
        freeze=lambda w: EXPERIMENTS[w.exp]["freeze"],
    shell:
        stage("train")
        + " epoch --data {params.data} --previous {input.previous} {params.state} --out {output.ckpt}"
        " --optim-out {output.optim} --metrics {output.metrics} --seed {wildcards.seed} {params.optim}"
        " {params.runtime} --augment {params.augment} --freeze {params.freeze}"
        " --tag '{wildcards.exp} seed {wildcards.seed}' --threads {threads} > {log} 2>&1"


rule history:
    input:
        lambda w: [metrics(w.exp, e, w.seed) for e in epochs(w.exp)],
    output:
        report(
            f"{RUN}/train/{{exp}}/seed{{seed}}/history.csv",
            caption="../report/history.rst",
            category="Training",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "seed": "{seed}"},
        ),
    log:
        logfile("train/{exp}/seed{seed}/history"),
    conda:
        ENV
    shell:
        stage("tables") + " history --metrics {input} --out {output} > {log} 2>&1"
