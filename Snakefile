# featevo: rebuild "Visualization of Feature Evolution During Convolutional
# Neural Network Training" (Punjabi & Katsaggelos, 2017) from its inputs.
#
#   snakemake --cores 2                                          the embedded demo (config.yaml)
#   snakemake --cores 2 --configfile configs/resnet-demo.yaml    the demo with torchvision's ResNet-18
#   snakemake --cores 8 --configfile configs/paper.yaml site.yaml
#                                   the paper, site.yaml saying where: data: {imagenet: PATH}


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/visualize.smk"
include: "workflow/rules/measures.smk"
include: "workflow/rules/figures.smk"


report: "workflow/report/workflow.rst"


onstart:
    write_run_identity(config)


rule all:
    default_target: True
    input:
        final_targets(),
