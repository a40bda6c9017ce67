rule train:
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
            "curves",
        ),
    output:
        model="results/model/model.pt",
        card="results/model/model.json",
        history="results/model/history.csv",
        curves=report(
            "results/model/curves.png",
            caption="../report/curves.rst",
            category="Training",
        ),
    log:
        "results/logs/train.log",
    benchmark:
        "results/benchmarks/train.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["train_gpus"],
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    params:
        model=config["model"],
        train=config["train"],
        checkpoint="results/model/checkpoint.pt",
    script:
        "../scripts/train.py"


rule predict:
    input:
        model="results/model/model.pt",
        data="results/data",
        lib=lib("infer", "device", "model", "normalize"),
    output:
        directory("results/predict"),
    log:
        "results/logs/predict.log",
    benchmark:
        "results/benchmarks/predict.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    params:
        tile_size=config["predict"]["tile_size"],
        overlap=config["predict"]["overlap"],
        batch_size=config["predict"]["batch_size"],
        splits=config["predict"]["splits"],
    script:
        "../scripts/predict.py"


rule postprocess:
    input:
        probs="results/predict",
        lib=lib("postprocess", "targets"),
    output:
        directory("results/labels"),
    log:
        "results/logs/postprocess.log",
    benchmark:
        "results/benchmarks/postprocess.tsv"
    conda:
        "../../envs/postprocess.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        thresholds=config["postprocess"],
    script:
        "../scripts/postprocess.py"
