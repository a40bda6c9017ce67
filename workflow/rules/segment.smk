rule segment:
    output:
        directory("results/segment"),
    input:
        images=segment_input,
        model=config["segment"]["model"],
        lib=lib("segment", "infer", "device", "model", "normalize", "postprocess", "targets"),
    params:
        tile_size=config["predict"]["tile_size"],
        overlap=config["predict"]["overlap"],
        batch_size=config["predict"]["batch_size"],
        thresholds=config["postprocess"],
    threads: config["resources"]["threads"]
    log:
        "results/logs/segment.log",
    benchmark:
        "results/benchmarks/segment.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    script:
        "../scripts/segment.py"
