# Stage 3: activation maximization, one job per checkpoint, every class in one batch.

V = config["visualize"]
VIZ_ARGS = (
    f"--image-size {config['data']['image_size']} --steps {V['steps']} --step-size {V['step_size']}"
    f" --normalize {V['normalize']} --median-every {V['median_every']} --median-size {V['median_size']}"
    f" --objective {V['objective']} --init {V['init']} --init-std {V['init_std']} --seed {V['seed']}"
    f" --device {V['device']} --precision {V['precision']}"
)
# one command for the checkpoints and for the reference network
VIZ_SHELL = (
    stage("visualize")
    + " --checkpoint {input} --out-png {output.png} --out-npz {output.npz}"
    " --units {params.units} --names {params.names:q} {params.args} --threads {threads} > {log} 2>&1"
)


rule visualize:
    input:
        lambda w: intact(checkpoint_file(w.exp, w.epoch, w.seed)),
    output:
        png=f"{RUN}/viz/{{exp}}/seed{{seed}}/epoch_{{epoch}}/composite.png",
        npz=f"{RUN}/viz/{{exp}}/seed{{seed}}/epoch_{{epoch}}/classes.npz",
    log:
        logfile("viz/{exp}/seed{seed}/epoch_{epoch}"),
    benchmark:
        benchmark_file("viz/{exp}/seed{seed}/epoch_{epoch}")
    wildcard_constraints:
        epoch="[0-9]{3}",
    conda:
        ENV
    threads: V["threads"]
    resources:
        gpu=VIZ_GPUS,
    params:
        units=list(range(len(CLASSES))),
        names=NAMES,
        args=VIZ_ARGS,
    shell:
        VIZ_SHELL


rule visualize_reference:
    input:
        f"{RUN}/reference/model.pt",
    output:
        png=f"{RUN}/viz/reference/composite.png",
        npz=f"{RUN}/viz/reference/classes.npz",
    log:
        logfile("viz/reference"),
    benchmark:
        benchmark_file("viz/reference")
    conda:
        ENV
    threads: V["threads"]
    resources:
        gpu=VIZ_GPUS,
    params:
        units=reference_units(),
        names=NAMES,
        args=VIZ_ARGS,
    shell:
        VIZ_SHELL


# The paper's future work (methods.*): saliency, occlusion and feature inversion
# on fixed validation images, every `methods.every`-th checkpoint of the first seed.
MC = config["methods"]
EXPLAIN_ARGS = (
    f"--images-per-class {MC['images_per_class']} --window {MC['occlusion']['window']}"
    f" --stride {MC['occlusion']['stride']} --layers {' '.join(MC['inversion']['layers'])}"
    f" --steps {MC['inversion']['steps']} --lr {MC['inversion']['lr']}"
    f" --tv-weight {MC['inversion']['tv_weight']} --device {MC['device']}"
)


rule explain:
    input:
        ckpt=lambda w: intact(checkpoint_file(w.exp, w.epoch, FIRST_SEED)),
        val=f"{RUN}/data/main/val_images.npy",
    output:
        f"{RUN}/explain/{{exp}}/epoch_{{epoch}}.npz",
    log:
        logfile("explain/{exp}/epoch_{epoch}"),
    benchmark:
        benchmark_file("explain/{exp}/epoch_{epoch}")
    wildcard_constraints:
        epoch="[0-9]{3}",
    conda:
        ENV
    threads: MC["threads"]
    resources:
        gpu=0 if MC["device"] == "cpu" else 1,
    params:
        data=folder_of("val"),
        methods=METHODS,
        args=EXPLAIN_ARGS,
    shell:
        stage("explain")
        + " --checkpoint {input.ckpt} --data {params.data} --out {output}"
        " --methods {params.methods} {params.args} --threads {threads} > {log} 2>&1"
