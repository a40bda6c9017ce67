rule train:
    output:
        model="results/model/model.pt",
        card="results/model/model.json",
        history="results/model/history.csv",
        curves=report(
            "results/model/curves.png",
            caption="../report/curves.rst",
            category="Training",
        ),
    input:
        data="results/data",
        lib=lib(
            "train",
            "device",
            "metrics",
            "model",
            "normalize",
            "postprocess",
            "targets",
            "report",
        ),
    params:
        model=config["model"],
        train=config["train"],
        checkpoint="results/model/checkpoint.pt",
    threads: config["resources"]["threads"]
    log:
        "results/logs/train.log",
    benchmark:
        "results/benchmarks/train.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=1,
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    script:
        "../scripts/train.py"


rule predict:
    output:
        directory("results/predict"),
    input:
        model="results/model/model.pt",
        data="results/data",
        lib=lib("infer", "device", "model", "normalize"),
    params:
        tile_size=config["predict"]["tile_size"],
        overlap=config["predict"]["overlap"],
        batch_size=config["predict"]["batch_size"],
        splits=config["predict"]["splits"],
    threads: config["resources"]["threads"]
    log:
        "results/logs/predict.log",
    benchmark:
        "results/benchmarks/predict.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    script:
        "../scripts/predict.py"


rule postprocess:
    output:
        directory("results/labels"),
    input:
        probs="results/predict",
        lib=lib("postprocess", "targets"),
    params:
        thresholds=config["postprocess"],
    log:
        "results/logs/postprocess.log",
    benchmark:
        "results/benchmarks/postprocess.tsv"
    conda:
        "../../envs/postprocess.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/postprocess.py"
