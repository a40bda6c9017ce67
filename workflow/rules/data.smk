rule download:
    output:
        "results/download/archive.zip",
    input:
        lib("download"),
    params:
        url=config["data"]["url"],
        sha256=config["data"]["sha256"],
    log:
        "results/logs/download.log",
    conda:
        "../../envs/download.yaml"
    resources:
        mem_mb=500,
        runtime=60,
    script:
        "../scripts/download.py"


rule preprocess:
    output:
        directory("results/data"),
    input:
        source=data_source,
        lib=lib("dataset"),
    params:
        max_images=config["data"]["max_images"],
        split=config["data"]["split"],
    log:
        "results/logs/preprocess.log",
    conda:
        "../../envs/preprocess.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/preprocess.py"
