rule evaluate:
    input:
        labels="results/labels",
        data="results/data",
        lib=lib("metrics", "io"),
    output:
        per_image="results/metrics/per_image.csv",
        summary=report(
            "results/metrics/summary.csv",
            caption="../report/summary.rst",
            category="Metrics",
        ),
    log:
        "results/logs/evaluate.log",
    conda:
        "../../envs/evaluate.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/evaluate.py"


rule report:
    input:
        per_image="results/metrics/per_image.csv",
        summary="results/metrics/summary.csv",
        labels="results/labels",
        data="results/data",
        lib=lib("report", "io"),
    output:
        score_vs_iou=report(
            "results/report/score_vs_iou.png",
            caption="../report/score_vs_iou.rst",
            category="Metrics",
        ),
        distribution=report(
            "results/report/score_distribution.png",
            caption="../report/score_distribution.rst",
            category="Metrics",
        ),
        overlays=report(
            "results/report/overlays.png",
            caption="../report/overlays.rst",
            category="Examples",
        ),
    log:
        "results/logs/report.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/report.py"
