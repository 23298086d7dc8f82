# Stage 5: what changed in the network itself, beside the pictures: every layer's
# representation over the epochs and seeds (linear CKA, featevo.represent).


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
        settled=PATHS["settled"],
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
    shell:
        stage("represent") + " --npz {input} --experiment {wildcards.exp}"
        " --csv {output.csv} --layers-csv {output.settled} --figure {output.png} {output.pdf} > {log} 2>&1"
