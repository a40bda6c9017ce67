from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


misread = text_numbers(config)
if misread:
    raise WorkflowError(
        f"config values read as text, not numbers: {', '.join(misread)}. "
        "Write them with a decimal point and a signed exponent (1.0e-4, 2.0e+3) or in full (0.0001)."
    )


SCHEMA = "workflow/schemas/config.schema.yaml"
coerce_text_values(
    config, yaml.safe_load(Path(workflow.source_path(SCHEMA)).read_text())
)
validate(config, SCHEMA)
problems = contradictions(config)
problems += filter(None, [disk_space_problem(), segment_input_problem()])
if problems:
    raise WorkflowError("; ".join(problems))
cpu_note = cpu_training_note(config)
if cpu_note:
    print(f"nucleoflow: warning: {cpu_note}", file=sys.stderr)


onstart:
    shutil.rmtree(ERRORS_DIR, ignore_errors=True)


onerror:
    # After Snakemake's own report (printed after this hook): the messages that say what to do.
    atexit.register(print_job_errors)


report: "workflow/report/workflow.rst"


# Jobs the segment target is spread over (one model load each); on a cluster raise it with
# --set-scatter segment=N.
scattergather:
    segment=1,


# Trivial steps run where Snakemake runs, never as cluster jobs (segment's gather is not one:
# it joins the parts of split images).
localrules:
    all,
    curves,


include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/segment.smk"


rule all:
    default_target: True
    input:
        "results/metrics/summary.csv",
        "results/model/curves.png",
        "results/report/index.html",
        "results/package/model.pt",
        "results/robustness/robustness.csv",
