# Stage 1: the class subset, from ImageNet or from the embedded stand-in.
# Highest priority: everything waits on it.  One stand-in job writes both pools
# before anything else can start; a two-thread job queued later would starve
# behind the single-thread training and visualization jobs (Snakemake reserves
# no cores), so extraction takes one thread (a few seconds).


rule standin:
    output:
        main=directory(path("standin", pool="main")),
        # the reference draws images of its own: it never sees the subset's validation images
        reference=directory(path("standin", pool="reference")),
        # the judge of the metrics: images of its own, another seed than the reference's
        judge=directory(path("standin", pool="judge")),
    log:
        logfile("standin"),
    priority: 30
    conda:
        ENV
    threads: 2
    params:
        settings=settings_of("standin"),
    shell:
        stage("standin")
        + " --main {output.main} --reference {output.reference} --judge {output.judge}"
        " --settings {params.settings:q} --processes {threads} > {log} 2>&1"


# the cue-conflict images (controls.cue_conflict): each class's parts in another's colours
rule cue_conflict:
    output:
        PATHS["cues"],
    log:
        logfile("cue_conflict"),
    benchmark:
        benchmark_file("cue_conflict")
    conda:
        ENV
    params:
        settings=settings_of("cues"),
    shell:
        stage("cues") + " --settings {params.settings:q} --out {output} > {log} 2>&1"


rule extract_subset:
    input:
        unpack(extract_inputs),
    output:
        train=path("images", split="train"),
        train_labels=path("labels", split="train"),
        val=path("images", split="val"),
        val_labels=path("labels", split="val"),
        manifest=report(
            PATHS["manifest"],
            caption="../report/manifest.rst",
            category="Data",
        ),
    log:
        logfile("extract_{subset}"),
    wildcard_constraints:
        subset="main|reference|judge",
    priority: 30
    conda:
        ENV
    threads: 1
    params:
        settings=lambda w: settings_of(f"extract {w.subset}")(w),
        out=lambda w, output: os.path.dirname(output.train),
        # the stand-in's folder, or your ImageNet: its path from the environment, its content here
        source=lambda w, input: input.standin if STANDIN else '"$FEATEVO_IMAGENET"',
        imagenet=lambda w: "" if STANDIN else f"imagenet {IMAGENET_ID}",
        exclude=lambda w, input: (
            f" --exclude {input.exclude}" if "exclude" in input.keys() else ""
        ),
        own_val=lambda w: (
            ' --val-images "$FEATEVO_IMAGENET_VAL" --val-labels "$FEATEVO_IMAGENET_VAL_LABELS"'
            if not STANDIN and OWN_VAL and w.subset == "main"
            else ""
        ),
    shell:
        stage("extract")
        + " --subset {wildcards.subset} --input {params.source} --out {params.out}"
        " --settings {params.settings:q}{params.own_val}{params.exclude}"
        " --threads {threads} > {log} 2>&1"
