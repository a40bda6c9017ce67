rule segment_shard:
    input:
        images=segment_input,
        model=model_path(config["segment"]["model"]),
        lib=library("segment.py"),
    output:
        directory("results/segment_shards/{scatteritem}"),
    log:
        "results/logs/segment/{scatteritem}.log",
    benchmark:
        "results/benchmarks/segment/{scatteritem}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=segment_mem_mb,
        runtime=120,
    params:
        predict=tiling_config,
        segment=config["segment"],
        inputs=segment_fingerprint,
    script:
        "../scripts/segment.py"


# Joins the parts of split images: reads their label rows a band at a time and measures again,
# from the images themselves, the nuclei that parts trim where they overlap.
rule segment:
    input:
        shards=gather.segment("results/segment_shards/{scatteritem}"),
        images=segment_input,
        lib=library("gather_segment.py"),
    output:
        directory("results/segment"),
    log:
        "results/logs/segment.log",
    benchmark:
        "results/benchmarks/segment.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/gather_segment.py"
