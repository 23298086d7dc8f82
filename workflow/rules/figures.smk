# Stage 4: the paper's figures and tables, the learning curves, the measured
# claims (metrics), the animations and the optional methods' figures.


rule evolution_figure:
    input:
        history=lambda w: history(experiment_of("figure", w.fig), FIRST_SEED),
        composites=lambda w: [
            composite(experiment_of("figure", w.fig), e, FIRST_SEED)
            for e in epochs(experiment_of("figure", w.fig))
        ],
    output:
        png=report(
            f"{RUN}/figures/{{fig}}.png",
            caption="../report/evolution.rst",
            category="Figures",
            labels={"figure": "{fig}"},
        ),
        pdf=f"{RUN}/figures/{{fig}}.pdf",
    log:
        logfile("figures/{fig}"),
    wildcard_constraints:
        fig="|".join(
            spec["figure"] for spec in EXPERIMENTS.values() if "figure" in spec
        )
        or "^$",
    conda:
        ENV
    params:
        exp=lambda w: experiment_of("figure", w.fig),
        viz=lambda w: viz_dir(experiment_of("figure", w.fig), FIRST_SEED),
        names=NAMES,
        seed=FIRST_SEED,
    shell:
        stage("figures") + " evolution --history {input.history} --viz {params.viz}"
        " --experiment '{params.exp} (seed {params.seed})' --names {params.names:q}"
        " --out {output.png} {output.pdf} > {log} 2>&1"


rule reference_figure:
    input:
        png=f"{RUN}/viz/reference/composite.png",
        npz=f"{RUN}/viz/reference/classes.npz",
        metrics=f"{RUN}/reference/model.json",
        # the subset's training images (labels in data.classes' order) under each class
        examples=f"{RUN}/data/main/train_images.npy",
    output:
        png=report(
            f"{RUN}/figures/fig3.png",
            caption="../report/fig3.rst",
            category="Figures",
            labels={"figure": "fig3"},
        ),
        pdf=f"{RUN}/figures/fig3.pdf",
    log:
        logfile("figures/fig3"),
    conda:
        ENV
    params:
        names=NAMES,
        source=config["reference"]["source"],
    shell:
        stage("figures") + " reference --npz {input.npz} --names {params.names:q}"
        " --source {params.source} --examples {input.examples} --metrics {input.metrics}"
        " --out {output.png} {output.pdf} > {log} 2>&1"


rule learning_curves:
    input:
        [history(exp, seed) for exp in EXPERIMENTS for seed in SEEDS],
    output:
        png=report(
            f"{RUN}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Figures",
            labels={"figure": "learning curves"},
        ),
        pdf=f"{RUN}/figures/learning_curves.pdf",
    log:
        logfile("figures/learning_curves"),
    conda:
        ENV
    params:
        names=[exp for exp in EXPERIMENTS for seed in SEEDS],
    shell:
        stage("figures") + " curves --history {input} --experiments {params.names}"
        " --out {output.png} {output.pdf} > {log} 2>&1"


rule accuracy_table:
    input:
        lambda w: [history(experiment_of("table", w.table), s) for s in SEEDS],
    output:
        csv=report(
            f"{RUN}/tables/{{table}}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md=f"{RUN}/tables/{{table}}.md",
        tex=f"{RUN}/tables/{{table}}.tex",
    log:
        logfile("tables/{table}"),
    wildcard_constraints:
        table="|".join(
            spec["table"] for spec in EXPERIMENTS.values() if "table" in spec
        )
        or "^$",
    conda:
        ENV
    params:
        exp=lambda w: experiment_of("table", w.table),
        paper=lambda w: paper_args(experiment_of("table", w.table)),
        seeds=SEEDS,
    shell:
        stage("tables")
        + " table --history {input} --seeds {params.seeds} --experiment {params.exp}"
        " {params.paper}"
        " --out {output.csv} {output.md} {output.tex} > {log} 2>&1"


rule feature_metrics:
    input:
        history=lambda w: history(w.exp, w.seed),
        viz=lambda w: [composite(w.exp, e, w.seed) for e in epochs(w.exp)],
        judge=judge_model(),
    output:
        csv=report(
            f"{RUN}/metrics/{{exp}}_seed{{seed}}.csv",
            caption="../report/metrics.rst",
            category="Metrics",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "seed": "{seed}", "kind": "table"},
        ),
        png=report(
            f"{RUN}/figures/metrics_{{exp}}_seed{{seed}}.png",
            caption="../report/metrics.rst",
            category="Metrics",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "seed": "{seed}", "kind": "measures"},
        ),
        pdf=f"{RUN}/figures/metrics_{{exp}}_seed{{seed}}.pdf",
        confusion=report(
            f"{RUN}/figures/confusion_{{exp}}_seed{{seed}}.png",
            caption="../report/confusion.rst",
            category="Metrics",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "seed": "{seed}", "kind": "confusion"},
        ),
        confusion_pdf=f"{RUN}/figures/confusion_{{exp}}_seed{{seed}}.pdf",
    log:
        logfile("metrics/{exp}_seed{seed}"),
    conda:
        ENV
    threads: config["visualize"]["threads"]
    params:
        viz=lambda w: viz_dir(w.exp, w.seed),
        units=judge_units(),
    shell:
        stage("metrics") + " --viz {params.viz} --history {input.history}"
        " --experiment '{wildcards.exp} (seed {wildcards.seed})' --judge {input.judge}"
        " --judge-units {params.units} --csv {output.csv} --figure {output.png} {output.pdf}"
        " --confusion {output.confusion} {output.confusion_pdf} --threads {threads} > {log} 2>&1"


rule animation:
    input:
        history=lambda w: history(w.exp, FIRST_SEED),
        composites=lambda w: [composite(w.exp, e, FIRST_SEED) for e in epochs(w.exp)],
    output:
        gif=f"{RUN}/figures/evolution_{{exp}}.gif",
        html=report(
            f"{RUN}/figures/evolution_{{exp}}.html",
            caption="../report/animation.rst",
            category="Animations",
            labels={"experiment": "{exp}"},
        ),
    log:
        logfile("figures/evolution_{exp}"),
    conda:
        ENV
    params:
        names=NAMES,
        seed=FIRST_SEED,
    shell:
        stage("figures")
        + " gif --history {input.history} --composites {input.composites}"
        " --experiment '{wildcards.exp} (seed {params.seed})' --names {params.names:q} --out {output.gif}"
        " --html {output.html}"
        " > {log} 2>&1"


rule method_figure:
    input:
        lambda w: [explained(w.exp, e) for e in explain_epochs(w.exp)],
    output:
        png=report(
            f"{RUN}/figures/{{method}}_{{exp}}.png",
            caption="../report/methods.rst",
            category="Methods",
            subcategory="{method}",
            labels={"method": "{method}", "experiment": "{exp}"},
        ),
        pdf=f"{RUN}/figures/{{method}}_{{exp}}.pdf",
    log:
        logfile("figures/{method}_{exp}"),
    wildcard_constraints:
        method="|".join(ALL_METHODS),
    conda:
        ENV
    params:
        names=NAMES,
        seed=FIRST_SEED,
    shell:
        stage("figures") + " method --method {wildcards.method} --npz {input}"
        " --experiment '{wildcards.exp} (seed {params.seed})' --names {params.names:q}"
        " --out {output.png} {output.pdf} > {log} 2>&1"
