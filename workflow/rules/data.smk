# Stage 1: the class subset, from ImageNet or from the embedded stand-in.


rule standin:
    output:
        directory(f"{RUN}/standin"),
    log:
        logfile("standin"),
    conda:
        ENV
    threads: 2
    params:
        wnids=reference_wnids(),
        per_class=config.get("standin", {}).get("images_per_class"),
        size=config.get("standin", {}).get("image_size"),
        clutter=config.get("standin", {}).get("clutter"),
        seed=config.get("standin", {}).get("seed"),
    shell:
        "python -m featevo.standin --out {output} --wnids {params.wnids} --per-class {params.per_class}"
        " --size {params.size} --clutter {params.clutter} --seed {params.seed} --processes {threads}"
        " > {log} 2>&1"


rule extract_subset:
    input:
        imagenet_input(),
    output:
        train=f"{RUN}/data/{{subset}}/train_images.npy",
        train_labels=f"{RUN}/data/{{subset}}/train_labels.npy",
        val=f"{RUN}/data/{{subset}}/val_images.npy",
        val_labels=f"{RUN}/data/{{subset}}/val_labels.npy",
        manifest=report(
            f"{RUN}/data/{{subset}}/manifest.csv",
            caption="../report/manifest.rst",
            category="Data",
        ),
    log:
        logfile("extract_{subset}"),
    conda:
        ENV
    threads: 2
    wildcard_constraints:
        subset="main|reference",
    params:
        wnids=lambda w: subset_spec(w.subset)[0],
        per_class=lambda w: subset_spec(w.subset)[1],
        val=lambda w: subset_spec(w.subset)[2],
        size=config["data"]["image_size"],
        seed=config["data"]["seed"],
        layout=config["data"]["layout"],
        resize=config["data"]["resize"],
        skip="--skip-unreadable" if config["data"]["skip_unreadable"] else "",
        out=lambda w: f"{RUN}/data/{w.subset}",
    shell:
        "python -m featevo.extract --input {input} --out {params.out} --wnids {params.wnids}"
        " --per-class {params.per_class} --val-per-class {params.val} --size {params.size}"
        " --seed {params.seed} --layout {params.layout} --resize {params.resize} {params.skip}"
        " --threads {threads} > {log} 2>&1"
