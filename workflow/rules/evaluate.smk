rule evaluate:
    input:
        labels="results/labels",
        data="results/data",
        lib=library("evaluate.py"),
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
        history="results/model/history.csv",
        card="results/model/model.json",
        thresholds=tuned_thresholds,
        robustness="results/robustness/robustness.csv",
        lib=library("report.py"),
    output:
        index=report(
            "results/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
        measurements=report(
            "results/report/measurements.html",
            caption="../report/measurements.rst",
            category="Report",
        ),
    log:
        "results/logs/report.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        thresholds=fixed_thresholds,
        source=config["data"]["url"],
    script:
        "../scripts/report.py"


rule robustness:
    input:
        model="results/package/model.pt",
        data="results/data",
        lib=library("robustness.py"),
    output:
        report(
            "results/robustness/robustness.csv",
            caption="../report/robustness.rst",
            category="Robustness",
        ),
    log:
        "results/logs/robustness.log",
    benchmark:
        "results/benchmarks/robustness.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        predict=tiling_config,
    script:
        "../scripts/robustness.py"
