"""The harness: container images, runners (local, Docker, and Slurm in `slurm`), output checks, the planner
and stage cache, the results store, MLflow tracking and the bench that ties them together (`run_bench`,
`hmu bench`, `make bench`); the conformance suite any method image is checked with (`conformance`,
`hmu check`) and submissions (`submit`: `hmu submit`, `hmu bundle verify`).

    >>> from benchmark.harness.images import ImageBuildSettings, build_images
    >>> images = build_images(ImageBuildSettings.for_checkout(), ["original"])
    >>> from benchmark.harness.runners import ResourceLimits, StageInvocation, select_runner
    >>> runner = select_runner("auto")                # Docker when an engine answers, else local (warned)
    >>> outcome = runner.run(StageInvocation(verb="describe", output_dir=Path("runs/x/describe"),
    ...                                      image=images.method("original").reference, method="original"))
    >>> outcome.state, outcome.stdout_log

Modules import nothing heavy at import time (torch is imported by the output checks when they run).
"""
