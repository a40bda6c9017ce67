from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


# Jobs the segment target is spread over (one model load each); on a cluster raise it with
# --set-scatter segment=N.
scattergather:
    segment=1,


# Trivial steps run where Snakemake runs, never as cluster jobs.
localrules:
    all,
    segment,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/segment.smk"


rule all:
    default_target: True
    input:
        "results/metrics/summary.csv",
        "results/report/score_vs_iou.png",
        "results/package/model.pt",
