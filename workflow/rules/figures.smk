# Stage 4: the paper's figures and tables, and the learning curves.


rule evolution_figure:
    input:
        history=lambda w: f"{RUN}/train/{experiment_of('figure', w.fig)}/history.csv",
        composites=lambda w: [
            composite(experiment_of("figure", w.fig), e)
            for e in epochs(experiment_of("figure", w.fig))
        ],
    output:
        png=report(
            f"{RUN}/figures/{{fig}}.png",
            caption="../report/evolution.rst",
            category="Figures",
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
        viz=f"{RUN}/viz",
        names=NAMES,
    shell:
        "python -m featevo.figures evolution --history {input.history} --viz {params.viz}/{params.exp}"
        " --experiment {params.exp} --names {params.names:q} --out {output.png} {output.pdf} > {log} 2>&1"


rule reference_figure:
    input:
        png=f"{RUN}/viz/reference/composite.png",
        npz=f"{RUN}/viz/reference/classes.npz",
    output:
        png=report(
            f"{RUN}/figures/fig3.png",
            caption="../report/fig3.rst",
            category="Figures",
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
        "python -m featevo.figures reference --npz {input.npz} --names {params.names:q}"
        " --source {params.source} --out {output.png} {output.pdf} > {log} 2>&1"


rule learning_curves:
    input:
        expand(f"{RUN}/train/{{exp}}/history.csv", exp=EXPERIMENTS),
    output:
        png=report(
            f"{RUN}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Figures",
        ),
        pdf=f"{RUN}/figures/learning_curves.pdf",
    log:
        logfile("figures/learning_curves"),
    conda:
        ENV
    params:
        names=list(EXPERIMENTS),
    shell:
        "python -m featevo.figures curves --history {input} --experiments {params.names}"
        " --out {output.png} {output.pdf} > {log} 2>&1"


rule accuracy_table:
    input:
        lambda w: f"{RUN}/train/{experiment_of('table', w.table)}/history.csv",
    output:
        csv=report(
            f"{RUN}/tables/{{table}}.csv",
            caption="../report/table.rst",
            category="Tables",
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
    shell:
        "python -m featevo.tables table --history {input} --experiment {params.exp} {params.paper}"
        " --out {output.csv} {output.md} {output.tex} > {log} 2>&1"


rule feature_metrics:
    input:
        history=f"{RUN}/train/{{exp}}/history.csv",
        viz=lambda w: [composite(w.exp, e) for e in epochs(w.exp)],
    output:
        csv=report(
            f"{RUN}/metrics/{{exp}}.csv",
            caption="../report/metrics.rst",
            category="Metrics",
        ),
        png=report(
            f"{RUN}/figures/metrics_{{exp}}.png",
            caption="../report/metrics.rst",
            category="Metrics",
        ),
        pdf=f"{RUN}/figures/metrics_{{exp}}.pdf",
    log:
        logfile("metrics/{exp}"),
    conda:
        ENV
    params:
        viz=lambda w: f"{RUN}/viz/{w.exp}",
    shell:
        "python -m featevo.metrics --viz {params.viz} --history {input.history} --experiment {wildcards.exp}"
        " --csv {output.csv} --figure {output.png} {output.pdf} > {log} 2>&1"
