"""`hmu bench`: run methods on tasks, score them with the shared evaluator, store and log every run.

    hmu bench --method original                          # the embedded default: one task, seed 0
    hmu bench --method rece --method lcr --seeds 0 1 2 --workers 2
    hmu bench --method all --task embedded_violence --task embedded_kick
    hmu bench --method original --runner local --no-mlflow
    hmu bench --log-only                                 # log stored run folders to MLflow, nothing else

`make bench METHOD=rece` runs `hmu bench --method rece`. Re-running a bench skips runs already stored and
stages already cached; `--fresh` runs everything again. The results land in `results/runs/<run id>/`, MLflow
in `results/mlflow.db` (or $MLFLOW_TRACKING_URI); `make mlflow-ui` serves it. After the summary the bench
renders the leaderboard site into `<results>/site` (`--no-site`: not); `make serve` serves it. Exit status: 0
when every run is ok, 1 when some run failed (its folder and the summary say why) or the site could not be
rendered (the runs are stored all the same), 2 when the bench itself could not go on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import HMUError
from benchmark.harness.images import DEFAULT_TORCH_SPEC
from benchmark.harness.slurm import RUNTIMES, SlurmSettings

if TYPE_CHECKING:
    from benchmark.harness.bench import BenchConfig

EXAMPLES = """\
examples:
  hmu bench --method original
  hmu bench --method rece --seeds 0 1 2 --workers 2
  hmu bench --method all --task embedded_violence --task embedded_kick
  hmu bench --method original --runner local --no-mlflow --results /tmp/results
  hmu bench --method rece --task humanml3d_violence --data humanml3d=dataset/HumanML3D \\
            --base-model humanml3d=models/momask --evaluator humanml3d=checkpoints/t2m
  hmu bench --method original --motions 300 --steps 20 --evaluator-epochs 1 --max-prompts 8 \\
            --passes 2 --repeats 2 --generation timesteps=2          # a smoke test in a few minutes
  hmu bench --log-only                      # log every stored run folder not in MLflow yet
  hmu bench --method lcr --runner slurm --slurm-partition gpu --slurm-account lab --slurm-gpus 1 \
            --device cuda --workers 8        # a Slurm job per stage (README: Running on a Slurm cluster)
  hmu bench --image keyword_filter=keyword-filter:1 --runner docker    # a method image of one's own

what a run leaves (results/runs/<method>--<task>--s<seed>--<hash>/):
  run_spec.json status.json provenance.json metrics.json {unlearn,generate,evaluate}/ logs/ samples/
"""


def _pairs(values: list[str] | None, option: str) -> dict[str, Path]:
    pairs: dict[str, Path] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise HMUError(f"{option} {value!r}: expected NAME=DIR (the dataset's name, e.g. humanml3d=...)")
        pairs[name] = Path(path)
    return pairs


def _images(values: list[str] | None) -> dict[str, str]:
    images: dict[str, str] = {}
    for value in values or []:
        name, sep, reference = value.partition("=")
        if not sep or not name or not reference:
            raise HMUError(f"--image {value!r}: expected NAME=REF (the method's name, e.g. my_method=img:1)")
        images[name] = reference
    return images


def _slurm(args: argparse.Namespace) -> SlurmSettings:
    """The Slurm runner's settings from the `--slurm-*` options."""
    template = {"apptainer_image": args.slurm_apptainer_image} if args.slurm_apptainer_image else {}
    return SlurmSettings(
        partition=args.slurm_partition,
        account=args.slurm_account,
        runtime=args.slurm_runtime,
        gpus=args.slurm_gpus,
        cpus=args.slurm_cpus,
        memory_gb=args.slurm_mem,
        time_minutes=args.slurm_time,
        extra=tuple(args.slurm_extra or ()),
        jobs_dir=args.slurm_jobs,
        **template,
    )


def _settings(values: list[str] | None) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for value in values or []:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise HMUError(f"--generation {value!r}: expected NAME=VALUE (e.g. timesteps=10)")
        try:
            settings[name] = json.loads(text)
        except json.JSONDecodeError:
            settings[name] = text
    return settings


def add_shared_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The options `hmu bench` shares with `hmu submit`: tasks, seeds, folders, workers, MLflow, and the
    user's own datasets, base models and evaluators (in the returned "shared inputs" group)."""
    parser.add_argument(
        "--task",
        action="append",
        metavar="NAME|FILE",
        help="a task (repeatable; default embedded_violence), or 'all': every task whose dataset is present",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S", help="seeds (default 0)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder (results/)")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="stage cache (default <results>/cache)")
    parser.add_argument("--workers", type=int, default=1, help="stages run at the same time (default 1)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    data = parser.add_argument_group("shared inputs")
    data.add_argument("--data", action="append", metavar="NAME=DIR", help="a dataset folder of yours")
    data.add_argument("--base-model", action="append", metavar="NAME=DIR", help="a base model of yours")
    data.add_argument("--evaluator", action="append", metavar="NAME=DIR", help="an evaluator of yours")
    return data


def shared_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The BenchConfig fields of `add_shared_arguments`' options."""
    return {
        "tasks": tuple(args.task or ("embedded_violence",)),
        "seeds": tuple(args.seeds),
        "results_dir": args.results,
        "cache_dir": args.cache,
        "workers": args.workers,
        "data_dirs": _pairs(args.data, "--data"),
        "base_models": _pairs(args.base_model, "--base-model"),
        "evaluators": _pairs(args.evaluator, "--evaluator"),
        "track": not args.no_mlflow,
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run methods on tasks, evaluate, store every run and log it to MLflow",
        description="Run each method (every sweep point) on each task and seed: unlearn, generate,\n"
        "evaluate, each stage in its container (or as a local process), cached by the hash of its inputs.\n"
        "Prepares the embedded dataset, the base model and the evaluator on first use. Stores one folder\n"
        "per run under <results>/runs/, logs it to MLflow and prints a summary.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--method",
        action="append",
        metavar="NAME",
        help="a method to run (repeatable), or 'all'; required unless --log-only",
    )
    parser.add_argument(
        "--image",
        action="append",
        metavar="NAME=REF",
        help="run method NAME from this image instead of a method folder (repeatable; implies --method "
        "NAME; check it first with hmu check REF)",
    )
    data = add_shared_arguments(parser)
    parser.add_argument(
        "--runner",
        choices=("auto", "local", "docker", "slurm"),
        default="auto",
        help="docker (sandboxed), local (processes, no sandbox), slurm (a Slurm job per stage), auto: "
        "docker when an engine answers",
    )
    parser.add_argument(
        "--base-image", metavar="REF", help="docker: the base of the images (default: built offline)"
    )
    parser.add_argument(
        "--torch-spec", default=DEFAULT_TORCH_SPEC, help=f"docker: torch in the images ({DEFAULT_TORCH_SPEC})"
    )
    parser.add_argument("--fresh", action="store_true", help="ignore the stage cache and stored runs")
    parser.add_argument("--retry-failed", action="store_true", help="run again the runs stored as failed")
    parser.add_argument("--no-gifs", action="store_true", help="log no GIFs of the sample motions")
    parser.add_argument(
        "--no-site", action="store_true", help="do not render the leaderboard site into <results>/site"
    )
    parser.add_argument(
        "--log-only", action="store_true", help="only log the stored run folders to MLflow, then stop"
    )
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow URI (default $MLFLOW_TRACKING_URI or sqlite:///<results>/mlflow.db)",
    )
    data.add_argument("--motions", type=int, metavar="N", help="embedded dataset size (default 2000)")
    data.add_argument("--steps", type=int, metavar="N", help="base model: steps per part (default: recipe)")
    data.add_argument("--evaluator-epochs", type=int, metavar="N", help="evaluator epochs (default: its own)")
    data.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="threads of the bench's own training (1: the fastest on a shared machine)",
    )
    data.add_argument(
        "--device", metavar="DEV", help="cpu or cuda for training and evaluation (default: auto)"
    )
    slurm = parser.add_argument_group("slurm (--runner slurm; the cluster is $SLURM_CONF's)")
    slurm.add_argument(
        "--slurm-partition", metavar="NAME", help="partition of every job (default: the cluster's)"
    )
    slurm.add_argument("--slurm-account", metavar="NAME", help="account of every job (default: the user's)")
    slurm.add_argument(
        "--slurm-runtime",
        choices=RUNTIMES,
        default="auto",
        help="what runs a stage on the node: docker (the sandbox), apptainer, none (a process of this "
        "venv); auto: docker when an engine answers, else none",
    )
    slurm.add_argument(
        "--slurm-gpus", type=int, default=0, metavar="N", help="GPUs of a stage that may use one (default 0)"
    )
    slurm.add_argument(
        "--slurm-cpus", type=int, metavar="N", help="CPUs of every stage (default: the method's)"
    )
    slurm.add_argument(
        "--slurm-mem", type=float, metavar="GB", help="memory of every stage (default: the method's)"
    )
    slurm.add_argument(
        "--slurm-time", type=int, metavar="MIN", help="minutes per stage (default: the method's)"
    )
    slurm.add_argument(
        "--slurm-extra",
        action="append",
        metavar="ARG",
        help="one more sbatch argument, verbatim (repeatable), e.g. --slurm-extra=--qos=high",
    )
    slurm.add_argument(
        "--slurm-apptainer-image",
        metavar="TEMPLATE",
        help="apptainer: the image to run, {name} or {reference} standing for the image (/shared/{name}.sif)",
    )
    slurm.add_argument("--slurm-jobs", type=Path, metavar="DIR", help="job folders (default <cache>/slurm)")
    protocol = parser.add_argument_group("evaluation")
    protocol.add_argument("--repeats", type=int, default=20, help="evaluation repeats (default 20)")
    protocol.add_argument(
        "--passes", type=int, metavar="N", help="generation passes per prompt (default: --repeats)"
    )
    protocol.add_argument(
        "--max-prompts", type=int, default=32, metavar="N", help="reference motions per prompt set (32)"
    )
    protocol.add_argument(
        "--generation", action="append", metavar="NAME=VALUE", help="a sampling setting, e.g. timesteps=10"
    )
    protocol.add_argument(
        "--reference",
        default="retrain",
        metavar="NAME",
        help="the reference method D_r ('none': no reference; default retrain)",
    )
    parser.set_defaults(func=run)


def world_arguments(config: BenchConfig) -> list[str]:
    """The `hmu bench` options that give `config`'s world (dataset size, training, evaluation, sampling): what
    `run` reads back, for scripts and tests that start a bench in a subprocess."""
    evaluation = config.evaluation
    options = ["--motions", str(config.embedded_motions)]
    if config.model_steps is not None:
        options += ["--steps", str(config.model_steps)]
    if config.evaluator_epochs is not None:
        options += ["--evaluator-epochs", str(config.evaluator_epochs)]
    options += ["--repeats", str(evaluation.repeats), "--passes", str(evaluation.passes)]
    options += ["--max-prompts", str(evaluation.max_prompts)]
    for name, value in config.generation.items():
        options += ["--generation", f"{name}={json.dumps(value)}"]
    return options


def run(args: argparse.Namespace) -> int:
    from benchmark.harness.bench import DEFAULT_EMBEDDED_MOTIONS, BenchConfig, format_summary, run_bench
    from benchmark.harness.spec import EvaluationSpec

    if args.log_only:
        from benchmark.harness.tracking import log_results

        logged = log_results(args.results, args.tracking_uri, render_gifs=not args.no_gifs)
        new = sum(1 for run in logged if run.new)
        print(f"{len(logged)} run folder(s) under {args.results / 'runs'}: {new} logged now")
        return 0
    images = _images(args.image)
    methods = tuple(dict.fromkeys([*(args.method or ()), *images]))
    if not methods:
        raise HMUError("name a method with --method NAME (or --method all)")
    config = BenchConfig(
        methods=methods,
        external_images=images,
        **shared_settings(args),
        runner=args.runner,
        slurm=_slurm(args),
        base_image=args.base_image,
        torch_spec=args.torch_spec,
        embedded_motions=args.motions or DEFAULT_EMBEDDED_MOTIONS,
        model_steps=args.steps,
        evaluator_epochs=args.evaluator_epochs,
        evaluation=EvaluationSpec(
            repeats=args.repeats, passes=args.passes or args.repeats, max_prompts=args.max_prompts
        ),
        generation=_settings(args.generation),
        reference_method=None if args.reference == "none" else args.reference,
        fresh=args.fresh,
        retry_failed=args.retry_failed,
        tracking_uri=args.tracking_uri,
        render_gifs=not args.no_gifs,
        threads=args.threads,
        device=args.device,
    )
    summary = run_bench(config)
    print(format_summary(summary))
    code = 0 if summary.ok else 1
    if not args.no_site:
        from benchmark.cli.leaderboard import render_results_site

        code = max(code, render_results_site(args.results))
    return code
