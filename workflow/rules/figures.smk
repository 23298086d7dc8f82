# Stage 6: the paper's figures and tables, the learning curves, the animations
# and the optional methods' figures (what the measures computed, drawn). Each is a few seconds
# of one core: on a cluster they run on the submitting host (localrule), not through the queue.


rule evolution_figure:
    input:
        history=lambda w: history(experiment_of("figure", w.fig), FIRST_SEED),
        # the epochs are chosen on the mean over seeds, as the table chooses them
        seeds=lambda w: [
            history(experiment_of("figure", w.fig), s)
            for s in seeds_of(experiment_of("figure", w.fig))
        ],
        metrics=lambda w: path(
            "feature_metrics", exp=experiment_of("figure", w.fig), seed=FIRST_SEED
        ),
        composites=lambda w: [
            composite(experiment_of("figure", w.fig), e, FIRST_SEED)
            for e in epochs(experiment_of("figure", w.fig))
        ],
        # the recipe the images were drawn with, named in the title
        npz=lambda w: classes_npz(
            experiment_of("figure", w.fig),
            epochs(experiment_of("figure", w.fig))[-1],
            FIRST_SEED,
        ),
    output:
        png=report(
            path("figure", name="{fig}", ext="png"),
            caption="../report/evolution.rst",
            category="Figures",
            labels={"figure": "{fig}"},
        ),
        pdf=path("figure", name="{fig}", ext="pdf"),
    log:
        logfile("figures/{fig}"),
    wildcard_constraints:
        fig="|".join(
            spec["figure"] for spec in EXPERIMENTS.values() if "figure" in spec
        )
        or "^$",
    localrule: True
    conda:
        ENV
    params:
        exp=lambda w: experiment_of("figure", w.fig),
        settings=settings_of("figures evolution"),
    shell:
        stage("figures")
        + " evolution --history {input.history} --composites {input.composites}"
        " --mean-of {input.seeds} --metrics {input.metrics} --npz {input.npz} --experiment {params.exp}"
        " --settings {params.settings:q} --out {output.png} {output.pdf} > {log} 2>&1"


rule top_figure:
    input:
        history=lambda w: history(w.exp, FIRST_SEED),
        seeds=lambda w: [history(w.exp, s) for s in seeds_of(w.exp)],
        npz=lambda w: [classes_npz(w.exp, e, FIRST_SEED) for e in epochs(w.exp)],
        val=path("images", subset="main", split="val"),
        metrics=lambda w: path("feature_metrics", exp=w.exp, seed=FIRST_SEED),
    output:
        png=report(
            path("figure", name="top_{exp}", ext="png"),
            caption="../report/top.rst",
            category="Figures",
            labels={"figure": "top images {exp}"},
        ),
        pdf=path("figure", name="top_{exp}", ext="pdf"),
    log:
        logfile("figures/top_{exp}"),
    localrule: True
    conda:
        ENV
    params:
        settings=settings_of("figures top"),
    shell:
        stage("figures")
        + " top --history {input.history} --mean-of {input.seeds} --npz {input.npz} --val {input.val}"
        " --metrics {input.metrics} --experiment {wildcards.exp}"
        " --settings {params.settings:q} --out {output.png} {output.pdf} > {log} 2>&1"


rule reference_figure:
    input:
        png=PATHS["reference_composite"],
        npz=PATHS["reference_classes"],
        judged=PATHS["reference_metrics"],
        metrics=path("network_metrics", net="reference"),
        # the subset's training images (labels in data.classes' order) under each class
        examples=path("images", subset="main", split="train"),
    output:
        png=report(
            path("figure", name="fig3", ext="png"),
            caption="../report/fig3.rst",
            category="Figures",
            labels={"figure": "fig3"},
        ),
        pdf=path("figure", name="fig3", ext="pdf"),
    log:
        logfile("figures/fig3"),
    localrule: True
    conda:
        ENV
    params:
        settings=settings_of("figures reference"),
    shell:
        stage("figures")
        + " reference --npz {input.npz} --examples {input.examples} --metrics {input.metrics}"
        " --judged {input.judged} --settings {params.settings:q}"
        " --out {output.png} {output.pdf} > {log} 2>&1"


rule learning_curves:
    input:
        [history(exp, seed) for exp in EXPERIMENTS for seed in seeds_of(exp)],
    output:
        png=report(
            path("figure", name="learning_curves", ext="png"),
            caption="../report/learning_curves.rst",
            category="Figures",
            labels={"figure": "learning curves"},
        ),
        pdf=path("figure", name="learning_curves", ext="pdf"),
    log:
        logfile("figures/learning_curves"),
    localrule: True
    conda:
        ENV
    params:
        settings=settings_of("figures curves"),
    shell:
        stage("figures") + " curves --history {input} --settings {params.settings:q}"
        " --out {output.png} {output.pdf} > {log} 2>&1"


rule accuracy_table:
    input:
        lambda w: [
            history(experiment_of("table", w.table), s)
            for s in seeds_of(experiment_of("table", w.table))
        ],
    output:
        csv=report(
            path("table", ext="csv"),
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md=path("table", ext="md"),
        tex=path("table", ext="tex"),
    log:
        logfile("tables/{table}"),
    wildcard_constraints:
        table="|".join(
            spec["table"] for spec in EXPERIMENTS.values() if "table" in spec
        )
        or "^$",
    localrule: True
    conda:
        ENV
    params:
        exp=lambda w: experiment_of("table", w.table),
        settings=settings_of(
            "tables table", exp=lambda w: experiment_of("table", w.table)
        ),
    shell:
        stage("tables")
        + " table --history {input} --experiment {params.exp} --table {wildcards.table}"
        " --settings {params.settings:q} --out {output.csv} {output.md} {output.tex} > {log} 2>&1"


rule units_figure:
    input:
        npz=lambda w: [
            path("units", exp=w.exp, epoch=e, seed=FIRST_SEED) for e in epochs(w.exp)
        ],
        history=lambda w: history(w.exp, FIRST_SEED),
    output:
        png=report(
            path("figure", name="units_{exp}", ext="png"),
            caption="../report/units.rst",
            category="Figures",
            labels={"figure": "units_{exp}"},
        ),
        pdf=path("figure", name="units_{exp}", ext="pdf"),
    log:
        logfile("figures/units_{exp}"),
    localrule: True
    conda:
        ENV
    params:
        settings=settings_of("figures units"),
    shell:
        stage("figures")
        + " units --npz {input.npz} --history {input.history} --experiment {wildcards.exp}"
        " --settings {params.settings:q} --out {output.png} {output.pdf} > {log} 2>&1"


rule animation:
    input:
        history=lambda w: history(w.exp, FIRST_SEED),
        composites=lambda w: [composite(w.exp, e, FIRST_SEED) for e in epochs(w.exp)],
    output:
        gif=path("figure", name="evolution_{exp}", ext="gif"),
        html=report(
            path("figure", name="evolution_{exp}", ext="html"),
            caption="../report/animation.rst",
            category="Animations",
            labels={"experiment": "{exp}"},
        ),
    log:
        logfile("figures/evolution_{exp}"),
    localrule: True
    conda:
        ENV
    params:
        settings=settings_of("figures gif"),
    shell:
        stage("figures")
        + " gif --history {input.history} --composites {input.composites} --experiment {wildcards.exp}"
        " --settings {params.settings:q} --out {output.gif} --html {output.html} > {log} 2>&1"


rule method_figure:
    input:
        lambda w: [explained(w.exp, e) for e in explain_epochs(w.exp)],
    output:
        png=report(
            path("figure", name="{method}_{exp}", ext="png"),
            caption="../report/methods.rst",
            category="Methods",
            subcategory="{method}",
            labels={"method": "{method}", "experiment": "{exp}"},
        ),
        pdf=path("figure", name="{method}_{exp}", ext="pdf"),
    log:
        logfile("figures/{method}_{exp}"),
    wildcard_constraints:
        method="|".join(ALL_METHODS),
    localrule: True
    conda:
        ENV
    params:
        settings=settings_of("figures method"),
    shell:
        stage("figures")
        + " method --method {wildcards.method} --npz {input} --experiment {wildcards.exp}"
        " --settings {params.settings:q} --out {output.png} {output.pdf} > {log} 2>&1"


# the atlas's page: every rendered checkpoint's channels, browsable (figures/atlas_<exp>.html)
rule atlas_page:
    input:
        npz=lambda w: [path("atlas_npz", exp=w.exp, epoch=e) for e in atlas_epochs()],
        val=path("images", subset="main", split="val"),
    output:
        report(
            path("figure", name="atlas_{exp}", ext="html"),
            caption="../report/atlas.rst",
            category="Atlas",
            labels={"experiment": "{exp}", "kind": "atlas"},
        ),
    log:
        logfile("figures/atlas_{exp}"),
    benchmark:
        benchmark_file("figures/atlas_{exp}")
    localrule: True
    conda:
        ENV
    params:
        settings=settings_of("atlas page"),
        val=folder_of("val"),
    shell:
        stage("atlas")
        + " page --npz {input.npz} --val {params.val} --experiment {wildcards.exp} --out {output}"
        " --settings {params.settings:q} > {log} 2>&1"
