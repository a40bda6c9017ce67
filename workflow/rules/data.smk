rule download:
    input:
        lib=library("download.py"),
    output:
        "results/download/archive.zip",
    log:
        "results/logs/download.log",
    conda:
        "../../envs/download.yaml"
    resources:
        mem_mb=500,
        runtime=60,
    params:
        url=config["data"]["url"],
        sha256=config["data"]["sha256"],
    script:
        "../scripts/download.py"


rule preprocess:
    input:
        source=data_source,
        lib=library("preprocess.py"),
    output:
        directory("results/data"),
    log:
        "results/logs/preprocess.log",
    conda:
        "../../envs/preprocess.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        max_images=config["data"]["max_images"],
        split=config["data"]["split"],
    script:
        "../scripts/preprocess.py"
