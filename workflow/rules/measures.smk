# Stage 5: what changed in the network itself, beside the pictures: every layer's
# representation over the epochs and seeds (linear CKA, featevo.measures.represent).


rule representations:
    input:
        lambda w: [
            represent_npz(w.exp, e, s) for s in seeds_of(w.exp) for e in epochs(w.exp)
        ],
    output:
        csv=report(
            PATHS["layer_metrics"],
            caption="../report/layers.rst",
            category="Layers",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "kind": "table"},
        ),
        settled=report(
            PATHS["settled"],
            caption="../report/settled.rst",
            category="Layers",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "kind": "settled"},
        ),
        png=report(
            path("figure", name="cka_{exp}", ext="png"),
            caption="../report/layers.rst",
            category="Layers",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "kind": "heatmap"},
        ),
        pdf=path("figure", name="cka_{exp}", ext="pdf"),
    log:
        logfile("metrics/cka_{exp}"),
    benchmark:
        benchmark_file("metrics/cka_{exp}")
    conda:
        ENV
    params:
        settings=settings_of("represent"),
    shell:
        stage("represent")
        + " --npz {input} --experiment {wildcards.exp} --settings {params.settings:q}"
        " --csv {output.csv} --layers-csv {output.settled} --figure {output.png} {output.pdf} > {log} 2>&1"


# The judge's floor: its accuracy on the run's validation images and its reading of the
# ascent's starting noise (featevo.measures.judge); verdicts that rest on a judge below
# judge.min_accuracy are "not testable".
rule judge_floor:
    input:
        judge=judge_model(),
        val=path("images", subset="main", split="val"),
    output:
        report(
            PATHS["judge_floor"],
            caption="../report/judge.rst",
            category="Metrics",
            subcategory="judge",
            labels={"experiment": "judge", "kind": "floor"},
        ),
    log:
        logfile("metrics/judge"),
    conda:
        ENV
    params:
        data=folder_of("val"),
        settings=settings_of("judge"),
    shell:
        stage("judge") + " --judge {input.judge} --val {params.data}"
        " --settings {params.settings:q} --out {output} > {log} 2>&1"


# The sanity check (Adebayo et al. 2018): each experiment's last checkpoint (first seed)
# re-initialized from the top layer down, visualized and measured like a trained one.
rule sanity_networks:
    input:
        ckpt=lambda w: intact(checkpoint_file(w.exp, epochs(w.exp)[-1], FIRST_SEED)),
    output:
        # re-made in seconds from the checkpoint, each as large as it (528 MB for VGG-16):
        # deleted once visualized
        [temp(path("sanity_checkpoint", level=level)) for level in SANITY_LEVELS],
    log:
        logfile("sanity/{exp}"),
    conda:
        ENV
    params:
        settings=settings_of("sanity randomize"),
    shell:
        stage("sanity")
        + " randomize --checkpoint {input.ckpt} --out {output} --settings {params.settings:q} > {log} 2>&1"


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


rule sanity_metrics:
    input:
        npz=sanity_inputs("classes"),
        represent=sanity_inputs("represent"),
        judge=judge_model(),
    output:
        csv=report(
            PATHS["sanity_metrics"],
            caption="../report/sanity.rst",
            category="Metrics",
            subcategory="sanity check",
            labels={"experiment": "sanity check", "kind": "table"},
        ),
        layers=report(
            PATHS["sanity_layers"],
            caption="../report/sanity.rst",
            category="Metrics",
            subcategory="sanity check",
            labels={"experiment": "sanity check", "kind": "layers"},
        ),
        png=report(
            path("figure", name="sanity", ext="png"),
            caption="../report/sanity.rst",
            category="Metrics",
            subcategory="sanity check",
            labels={"experiment": "sanity check", "kind": "figure"},
        ),
        pdf=path("figure", name="sanity", ext="pdf"),
    log:
        logfile("metrics/sanity"),
    conda:
        ENV
    threads: config["visualize"]["threads"]
    params:
        settings=settings_of("sanity measure"),
    shell:
        stage("sanity")
        + " measure --npz {input.npz} --represent {input.represent} --settings {params.settings:q}"
        " --judge {input.judge} --csv {output.csv} --layers-csv {output.layers}"
        " --figure {output.png} {output.pdf} --threads {threads} > {log} 2>&1"
