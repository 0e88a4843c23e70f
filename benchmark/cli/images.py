"""`hmu images build|ls|clean`: the benchmark's container images, built offline and tagged by content.

    hmu images build                                  # base, method base, every method, evaluator
    hmu images build --method original --method rece  # only those methods (and what they stand on)
    hmu images build --base-image python:3.11-slim    # an official image instead of the debootstrap one
    hmu images ls
    hmu images clean [--stale]                        # remove them (only older content tags)

`make images` runs `hmu images build`. An engine must answer (`bash ci/start-docker.sh` starts one).
"""

from __future__ import annotations

import argparse
import os

EXAMPLES = """\
examples:
  hmu images build
  hmu images build --method original --no-evaluator
  hmu images build --base-image python:3.11-slim          # with a registry; CUDA/PyTorch images work too
  hmu images build --debian-mirror http://mirror.example/debian
  hmu images ls
  hmu images clean --stale                                # older content tags only
  hmu images clean                                        # every image of the benchmark

images (tags are sha256 of their content: a change rebuilds only what it touches):
  hmu/base:<tag>            debootstrap bookworm minbase + python3 (skipped with --base-image)
  hmu/method-base:<tag>     /opt/venv with the benchmark and its dependencies (build/wheelhouse)
  hmu/method/<name>:<tag>   one per method folder: entrypoint `hmu method`, verb describe|unlearn|generate
  hmu/evaluator:<tag>       entrypoint `hmu evaluate --input /hmu/input --output /hmu/output`
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    images = subparsers.add_parser(
        "images",
        help="build and list the container images (method base, methods, evaluator)",
        description="Build the images offline (debootstrap base, host-built wheelhouse), tagged by content,\n"
        "reusing every image whose content did not change; or list them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = images.add_subparsers(dest="verb", metavar="VERB", required=True)
    build = verbs.add_parser("build", help="build (or reuse) the images")
    build.add_argument(
        "--method",
        dest="methods",
        action="append",
        metavar="NAME",
        help="build this method's image (repeatable; default: every method folder)",
    )
    build.add_argument(
        "--base-image",
        metavar="REF",
        default=os.environ.get("BASE_IMAGE") or None,
        help="base image instead of the debootstrap one, e.g. python:3.11-slim (default $BASE_IMAGE)",
    )
    build.add_argument(
        "--debian-mirror",
        metavar="URL",
        help="Debian mirror for debootstrap (default: the host apt's, from /etc/apt)",
    )
    build.add_argument(
        "--torch-spec",
        metavar="SPEC",
        default=os.environ.get("TORCH_SPEC") or None,
        help="torch requirement of the wheelhouse (default $TORCH_SPEC, else torch==2.13.0: the CPU wheel)",
    )
    build.add_argument("--no-evaluator", action="store_true", help="do not build the evaluator image")
    build.set_defaults(func=run_build)
    listing = verbs.add_parser("ls", help="list the benchmark's images on the engine")
    listing.set_defaults(func=run_ls)
    clean = verbs.add_parser("clean", help="remove the benchmark's images from the engine")
    clean.add_argument(
        "--stale", action="store_true", help="only images no :latest tag points at (older content tags)"
    )
    clean.set_defaults(func=run_clean)


def run_build(args: argparse.Namespace) -> int:
    from benchmark.harness.images import DEFAULT_TORCH_SPEC, ImageBuildSettings, build_images

    settings = ImageBuildSettings.for_checkout(
        base_image=args.base_image,
        debian_mirror=args.debian_mirror,
        torch_spec=args.torch_spec or DEFAULT_TORCH_SPEC,
    )
    images = build_images(settings, args.methods, evaluator=not args.no_evaluator)
    for image in images.all():
        what = "reused" if image.reused else f"built in {image.seconds:.0f} s"
        print(f"{image.reference}  {image.image_id[:19]}  {image.size_bytes / 1e6:,.0f} MB  {what}")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    from benchmark.harness.images import list_images

    rows = [("image", "id", "role", "method", "created", "size")]
    for image in list_images():
        rows.append(
            (image.reference, image.image_id[:19], image.role, image.method or "", image.created, image.size)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def run_clean(args: argparse.Namespace) -> int:
    from benchmark.harness.images import remove_images

    removed = remove_images(stale_only=args.stale)
    for target in removed:
        print(f"removed {target}")
    print(f"{len(removed)} image(s) removed")
    return 0
