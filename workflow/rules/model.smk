rule train:
    input:
        data="results/data",
        init=(
            model_path(config["train"]["init_model"])
            if config["train"]["init_model"]
            else []
        ),
        lib=library("train.py"),
    output:
        directory("results/model/epochs"),
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
        work="results/model/training",
    script:
        "../scripts/train.py"


# Which epoch is the model: every epoch scored on the validation crops with the head's watershed
# (best_epoch.py). A rule of its own, so that editing the watershed or the score re-scores the
# saved epochs (minutes) and never retrains them (hours).
rule best_epoch:
    input:
        epochs="results/model/epochs",
        data="results/data",
        lib=library("best_epoch.py"),
    output:
        model="results/model/model.pt",
        card="results/model/model.json",
        history="results/model/history.csv",
    log:
        "results/logs/best_epoch.log",
    benchmark:
        "results/benchmarks/best_epoch.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/best_epoch.py"


# The training curves: a rule of its own, so that redrawing them never retrains.
rule curves:
    input:
        history="results/model/history.csv",
        lib=library("curves.py"),
    output:
        report(
            "results/model/curves.png",
            caption="../report/curves.rst",
            category="Training",
        ),
    log:
        "results/logs/curves.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/curves.py"


rule predict:
    input:
        model="results/model/model.pt",
        data="results/data",
        lib=library("predict.py"),
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
        predict=tiling_config,
    script:
        "../scripts/predict.py"


rule tune:
    input:
        probs="results/predict",
        data="results/data",
        lib=library("tune.py"),
    output:
        thresholds="results/tune/thresholds.json",
        grid="results/tune/grid.csv",
    log:
        "results/logs/tune.log",
    benchmark:
        "results/benchmarks/tune.tsv"
    conda:
        "../../envs/evaluate.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        head=config["model"]["head"],
    script:
        "../scripts/tune.py"


# What decides the labels besides the weights (thresholds, nucleus sizes), saved with them:
# the label rule, the package and users' segment all read them from this model's card.
rule tuned_model:
    input:
        model="results/model/model.pt",
        thresholds=tuned_thresholds,
        data="results/data",
        lib=library("tuned_model.py"),
    output:
        model="results/tuned/model.pt",
        card="results/tuned/model.json",
    log:
        "results/logs/tuned_model.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        thresholds=fixed_thresholds,
    script:
        "../scripts/tuned_model.py"


# The labels the metrics describe, made as `nucleoflow segment` makes a user's.
rule label:
    input:
        model="results/tuned/model.pt",
        archive=data_source,
        data="results/data",
        lib=library("label.py"),
    output:
        directory("results/labels"),
    log:
        "results/logs/label.log",
    benchmark:
        "results/benchmarks/label.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=segment_mem_mb,
        runtime=120,
    params:
        splits=config["predict"]["splits"],
        predict=tiling_config,
        blocks=block_config,
    script:
        "../scripts/label.py"


rule package:
    input:
        model="results/tuned/model.pt",
        summary="results/metrics/summary.csv",
        data="results/data",
        archive=data_source,
        lib=library("package.py"),
    output:
        model="results/package/model.pt",
        card="results/package/model.json",
        onnx="results/package/model.onnx",
        bioimageio=directory("results/package/bioimageio"),
    log:
        "results/logs/package.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=config["data"],
        predict=config["predict"],
    script:
        "../scripts/package.py"
