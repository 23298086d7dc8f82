# Stage 3: activation maximization, one job per checkpoint, every class in one batch
# (and of the sanity check's re-initialized networks), and the other methods.

VIZ_CFG = config["visualize"]
# visualize.maco.spectrum images: MACO keeps the mean spectrum of the run's training images
MACO_IMAGES = (
    VIZ_CFG["parameterization"] == "maco" and VIZ_CFG["maco"]["spectrum"] == "images"
)
SPECTRUM_IMAGES = path("images", subset="main", split="train") if MACO_IMAGES else []


rule visualize:
    input:
        unpack(viz_inputs),
    output:
        png=PATHS["composite"],
        npz=PATHS["classes"],
        # the checkpoint's layers on fixed validation images (featevo.measures.represent), read in
        # this job: a job of its own would add its start-up (half of a demo job) per checkpoint
        represent=PATHS["represent"],
    log:
        logfile("viz/{exp}/seed{seed}/epoch_{epoch}"),
    benchmark:
        benchmark_file("viz/{exp}/seed{seed}/epoch_{epoch}")
    wildcard_constraints:
        epoch="[0-9]{3}",
    group:
        run_group
    conda:
        ENV
    threads: VIZ_CFG["threads"]
    resources:
        gpu=VIZ_GPUS,
    params:
        settings=settings_of("visualize"),
        val=folder_of("val"),
        # its starting noise: visualize.seed with what it visualizes (featevo.optvis.render.start_seed)
        key="{exp}/seed{seed}/epoch{epoch}",
        layers=lambda w, input, output: (
            f"--represent {output.represent}"
            + (f" --previous {input.previous}" if "previous" in input.keys() else "")
        ),
        spectrum=flag_folder("--spectrum-images", "spectrum"),
        cues=lambda w, input: f"--cues {input.cues}" if "cues" in input.keys() else "",
    shell:
        stage("visualize")
        + " --checkpoint {input.ckpt} --out-png {output.png} --out-npz {output.npz} --val {params.val}"
        " --key {params.key} {params.layers} {params.spectrum} {params.cues} --settings {params.settings:q}"
        " --threads {threads}"
        " > {log} 2>&1"


# visualize.units: the inner units of every checkpoint of the first seed, in one job each
rule visualize_units:
    input:
        ckpt=lambda w: intact(checkpoint_file(w.exp, w.epoch, w.seed)),
        spectrum=SPECTRUM_IMAGES,
    output:
        png=PATHS["units_png"],
        npz=PATHS["units"],
    log:
        logfile("viz/{exp}/seed{seed}/epoch_{epoch}_units"),
    benchmark:
        benchmark_file("viz/{exp}/seed{seed}/epoch_{epoch}_units")
    wildcard_constraints:
        epoch="[0-9]{3}",
    group:
        run_group
    conda:
        ENV
    threads: VIZ_CFG["threads"]
    resources:
        gpu=VIZ_GPUS,
    params:
        settings=settings_of("visualize units"),
        spectrum=flag_folder("--spectrum-images", "spectrum"),
    shell:
        stage("visualize")
        + " --inner --checkpoint {input.ckpt} --out-png {output.png} --out-npz {output.npz}"
        " --settings {params.settings:q} {params.spectrum} --threads {threads} > {log} 2>&1"


# the atlas: its channels at one checkpoint (first seed), many in one batch
rule atlas_render:
    input:
        ckpt=lambda w: intact(checkpoint_file(w.exp, w.epoch, FIRST_SEED)),
        val=path("images", subset="main", split="val"),
        judge=judge_model(),
    output:
        PATHS["atlas_npz"],
    log:
        logfile("atlas/{exp}/epoch_{epoch}"),
    benchmark:
        benchmark_file("atlas/{exp}/epoch_{epoch}")
    wildcard_constraints:
        epoch="[0-9]{3}",
    group:
        run_group
    conda:
        ENV
    threads: VIZ_CFG["threads"]
    resources:
        gpu=VIZ_GPUS,
    params:
        settings=settings_of("atlas render"),
        val=folder_of("val"),
        key="atlas/{exp}/epoch{epoch}",
    shell:
        stage("atlas")
        + " render --checkpoint {input.ckpt} --val {params.val} --key {params.key} --judge {input.judge}"
        " --out {output}"
        " --settings {params.settings:q} --threads {threads} > {log} 2>&1"


rule visualize_reference:
    input:
        ckpt=path("network", net="reference"),
        spectrum=SPECTRUM_IMAGES,
    output:
        png=PATHS["reference_composite"],
        npz=PATHS["reference_classes"],
    log:
        logfile("viz/reference"),
    benchmark:
        benchmark_file("viz/reference")
    conda:
        ENV
    threads: VIZ_CFG["threads"]
    resources:
        gpu=VIZ_GPUS,
    params:
        # the same recipe as every checkpoint's (Fig. 3 compares with Figs. 1-2)
        settings=settings_of("visualize reference"),
        spectrum=flag_folder("--spectrum-images", "spectrum"),
    shell:
        stage("visualize")
        + " --reference --key reference --checkpoint {input.ckpt} --out-png {output.png} --out-npz {output.npz}"
        " {params.spectrum} --settings {params.settings:q} --threads {threads} > {log} 2>&1"


# The paper's future work (methods.*): saliency, occlusion and feature inversion
# on fixed validation images, every `methods.every`-th checkpoint of the first seed.


rule explain:
    input:
        ckpt=lambda w: intact(checkpoint_file(w.exp, w.epoch, FIRST_SEED)),
        val=path("images", subset="main", split="val"),
    output:
        PATHS["explained"],
    log:
        logfile("explain/{exp}/epoch_{epoch}"),
    benchmark:
        benchmark_file("explain/{exp}/epoch_{epoch}")
    wildcard_constraints:
        epoch="[0-9]{3}",
    group:
        run_group
    conda:
        ENV
    threads: METHODS_CFG["threads"]
    resources:
        gpu=0 if METHODS_CFG["device"] == "cpu" else 1,
    params:
        data=folder_of("val"),
        settings=settings_of("explain"),
    shell:
        stage("explain")
        + " --checkpoint {input.ckpt} --data {params.data} --out {output}"
        " --settings {params.settings:q} --threads {threads} > {log} 2>&1"


rule visualize_sanity:
    input:
        ckpt=PATHS["sanity_checkpoint"],
        val=path("images", subset="main", split="val"),
        spectrum=SPECTRUM_IMAGES,
    output:
        png=PATHS["sanity_composite"],
        npz=PATHS["sanity_classes"],
        represent=PATHS["sanity_represent"],
    log:
        logfile("viz/sanity/{exp}/{level}"),
    benchmark:
        benchmark_file("viz/sanity/{exp}/{level}")
    wildcard_constraints:
        level="|".join(SANITY_LEVELS),
    conda:
        ENV
    threads: VIZ_CFG["threads"]
    resources:
        gpu=VIZ_GPUS,
    params:
        settings=settings_of("visualize"),
        val=folder_of("val"),
        key="sanity/{exp}/{level}",
        spectrum=flag_folder("--spectrum-images", "spectrum"),
    shell:
        stage("visualize")
        + " --checkpoint {input.ckpt} --out-png {output.png} --out-npz {output.npz} --val {params.val}"
        " --key {params.key} --represent {output.represent} {params.spectrum} --settings {params.settings:q}"
        " --threads {threads}"
        " > {log} 2>&1"
