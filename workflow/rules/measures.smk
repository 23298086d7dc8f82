# Stage 5: the measures. What changed in the network itself, beside the pictures
# (every layer's representation over the epochs and seeds, featevo.measures.represent),
# the judge's floor, the sanity check, the feature and reference metrics, and the
# claims they decide (featevo.measures.claims).


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


# The positive controls: images of known complexity (the stand-in's background with 1, 2,
# 4, 8 of its parts), which a complexity measure must order before a claim rests on it.
rule positive_controls:
    output:
        report(
            PATHS["controls"],
            caption="../report/controls.rst",
            category="Metrics",
            subcategory="controls",
            labels={"experiment": "controls", "kind": "positive"},
        ),
    log:
        logfile("metrics/controls"),
    benchmark:
        benchmark_file("metrics/controls")
    conda:
        ENV
    params:
        settings=settings_of("controls"),
    shell:
        stage("controls")
        + " --settings {params.settings:q} --out {output} > {log} 2>&1"


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


rule reference_metrics:
    input:
        npz=PATHS["reference_classes"],
        judge=judge_model(),
        val=path("images", subset="main", split="val"),
    output:
        csv=report(
            PATHS["reference_metrics"],
            caption="../report/reference_metrics.rst",
            category="Metrics",
            subcategory="reference (Fig. 3)",
            labels={"experiment": "reference", "kind": "table"},
        ),
        restarts=report(
            PATHS["reference_restarts"],
            caption="../report/restarts.rst",
            category="Metrics",
            subcategory="reference (Fig. 3)",
            labels={"experiment": "reference", "kind": "per restart"},
        ),
    log:
        logfile("metrics/reference"),
    conda:
        ENV
    threads: config["visualize"]["threads"]
    params:
        settings=settings_of("metrics"),
        val=folder_of("val"),
    shell:
        stage("metrics")
        + " --npz {input.npz} --experiment reference --judge {input.judge}"
        " --settings {params.settings:q} --csv {output.csv} --restarts-csv {output.restarts}"
        " --val {params.val}"
        " --threads {threads} > {log} 2>&1"


rule claims:
    input:
        metrics=[
            path("feature_metrics", exp=exp, seed=seed)
            for exp in EXPERIMENTS
            for seed in seeds_of(exp)
        ],
        restarts=[
            path("restart_metrics", exp=exp, seed=seed)
            for exp in EXPERIMENTS
            for seed in seeds_of(exp)
        ],
        layers=[path("settled", exp=exp) for exp in EXPERIMENTS],
        reference=[] if FIG3_MISSING else PATHS["reference_restarts"],
        floor=PATHS["judge_floor"],
        sanity=PATHS["sanity_metrics"],
        controls=PATHS["controls"],
    output:
        csv=report(
            path("table", table="claims", ext="csv"),
            caption="../report/claims.rst",
            category="Tables",
            labels={"table": "claims"},
        ),
        md=path("table", table="claims", ext="md"),
    log:
        logfile("tables/claims"),
    conda:
        ENV
    params:
        settings=settings_of("claims"),
        reference=lambda w, input: (
            "" if FIG3_MISSING else f"--reference {input.reference}"
        ),
    shell:
        stage("claims")
        + " --metrics {input.metrics} --restarts {input.restarts} --layers {input.layers}"
        " --floor {input.floor} --sanity {input.sanity} --controls {input.controls} {params.reference}"
        " --settings {params.settings:q}"
        " --out {output.csv} {output.md} > {log} 2>&1"


rule feature_metrics:
    input:
        history=lambda w: history(w.exp, w.seed),
        npz=lambda w: [classes_npz(w.exp, e, w.seed) for e in epochs(w.exp)],
        judge=judge_model(),
        floor=PATHS["judge_floor"],
        # every image scored against the run's real validation images
        val=path("images", subset="main", split="val"),
    output:
        csv=report(
            PATHS["feature_metrics"],
            caption="../report/metrics.rst",
            category="Metrics",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "seed": "{seed}", "kind": "table"},
        ),
        png=report(
            path("figure", name="metrics_{exp}_seed{seed}", ext="png"),
            caption="../report/metrics.rst",
            category="Metrics",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "seed": "{seed}", "kind": "measures"},
        ),
        pdf=path("figure", name="metrics_{exp}_seed{seed}", ext="pdf"),
        confusion=report(
            path("figure", name="confusion_{exp}_seed{seed}", ext="png"),
            caption="../report/confusion.rst",
            category="Metrics",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "seed": "{seed}", "kind": "confusion"},
        ),
        confusion_pdf=path("figure", name="confusion_{exp}_seed{seed}", ext="pdf"),
        restarts=report(
            PATHS["restart_metrics"],
            caption="../report/restarts.rst",
            category="Metrics",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "seed": "{seed}", "kind": "per restart"},
        ),
    log:
        logfile("metrics/{exp}_seed{seed}"),
    conda:
        ENV
    threads: config["visualize"]["threads"]
    params:
        settings=settings_of("metrics"),
        val=folder_of("val"),
    shell:
        stage("metrics") + " --npz {input.npz} --history {input.history}"
        " --experiment '{wildcards.exp} (seed {wildcards.seed})' --judge {input.judge}"
        " --settings {params.settings:q} --csv {output.csv} --figure {output.png} {output.pdf}"
        " --confusion {output.confusion} {output.confusion_pdf} --restarts-csv {output.restarts}"
        " --floor {input.floor} --val {params.val} --threads {threads} > {log} 2>&1"
