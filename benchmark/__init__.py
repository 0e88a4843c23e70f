"""HMU-Bench: a containerised benchmark for human motion unlearning.

The package is the library: motion representation and datasets (`benchmark.motion`, `benchmark.data`),
tasks and concept splits (`benchmark.tasks`), and the `hmu` command line (`benchmark.cli`).
Methods, tasks and the leaderboard live outside it and depend on it, never the reverse.
"""

__version__ = "0.1.0"
