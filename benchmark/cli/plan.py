"""`hmu plan`: a task's evaluation plan on a dataset: `prompts.json` (to generate) and `references.json`.

hmu plan --task tasks/embedded_violence.yaml --data data/embedded --out runs/plan
hmu plan --task embedded_violence --data data/embedded --out runs/plan-cpu --max-prompts 128 --passes 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples:
  hmu plan --task tasks/embedded_violence.yaml --data data/embedded --out runs/plan
  hmu plan --task embedded_violence --data data/embedded --out runs/plan-cpu --max-prompts 128 --passes 5
  hmu plan --task humanml3d_violence --data dataset/HumanML3D --out runs/plan-hml --labels keywords
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="build a task's evaluation prompts and references",
        description="Split the dataset by the task's concept and write, for every prompt set of the task,\n"
        "the prompts a method generates from (<out>/prompts.json: one per caption, with its length,\n"
        "repeats and seed) and what the evaluator compares them with (<out>/references.json).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", required=True, metavar="FILE|NAME", help="a task YAML file or a task name")
    parser.add_argument("--data", required=True, type=Path, metavar="DIR", help="the dataset folder")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="the folder to write")
    parser.add_argument(
        "--tasks-dir", type=Path, default=Path("tasks"), help="where task names are looked up"
    )
    parser.add_argument("--passes", type=int, default=20, help="generation passes, one per repeat (20)")
    parser.add_argument(
        "--max-prompts", type=int, metavar="N", help="at most N reference motions per prompt set (CPU runs)"
    )
    parser.add_argument("--seed", type=int, default=0, help="caption turns, subsample and prompt seeds (0)")
    parser.add_argument(
        "--labels",
        choices=("keywords", "ground_truth"),
        default="keywords",
        help="concept labels of the NCS/classifier database (keywords: the task's split)",
    )
    parser.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    from benchmark.data.humanml3d import HumanML3DFolder
    from benchmark.evaluation.prompts import build_evaluation_plan, write_plan
    from benchmark.splits import compute_split
    from benchmark.tasks import find_task, load_task

    task = load_task(find_task(args.task, args.tasks_dir))
    folder = HumanML3DFolder(args.data)
    plan = build_evaluation_plan(
        task,
        folder,
        compute_split(task, folder.root),
        seed=args.seed,
        passes=args.passes,
        max_prompts=args.max_prompts,
        label_source=args.labels,
    )
    prompts_path, references_path = write_plan(plan, args.out)
    for prompt_set in plan.prompt_sets:
        generated = sum(item.repeats for item in prompt_set.items)
        print(
            f"{prompt_set.name}: {len(prompt_set.groups)} of {prompt_set.total_groups} reference motions, "
            f"{len(prompt_set.items)} captions, {generated} motions to generate"
        )
    print(f"wrote {prompts_path} and {references_path}")
    return 0
