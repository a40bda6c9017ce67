rule segment_shard:
    input:
        images=segment_input,
        model=model_path(config["segment"]["model"]),
        lib=lib("segment", "io", "options"),
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
        mem_mb=4000,
        runtime=120,
    params:
        predict=tiling_config,
        segment=config["segment"],
        inputs=segment_fingerprint,
    script:
        "../scripts/segment.py"


rule segment:
    input:
        shards=gather.segment("results/segment_shards/{scatteritem}"),
        lib=lib("segment", "io"),
    output:
        directory("results/segment"),
    log:
        "results/logs/segment.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=1000,
        runtime=30,
    script:
        "../scripts/gather_segment.py"
