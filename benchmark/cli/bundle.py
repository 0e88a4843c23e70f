"""`hmu bundle verify DIR`: check a results bundle made by `hmu submit` before merging it.

    hmu bundle verify submissions/keyword_filter

Checks every file against the manifest's sha256 (nothing changed, added or missing, no links), that the
conformance check passed on the submitted image, and that every run folder is well formed and names that
image in its run_spec.json and provenance.json. Exit status 0 when the bundle verifies, 1 when it does not
(each problem printed on its own line).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="verify a results bundle (hmu submit) before merging it",
        description="Results bundles written by `hmu submit`.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    verify = verbs.add_parser("verify", help="check a bundle's hashes, check report and run folders")
    verify.add_argument("bundle", type=Path, metavar="DIR", help="the bundle folder")
    verify.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    from benchmark.harness.submit import verify_bundle

    checked = verify_bundle(args.bundle)
    if not checked.ok:
        print(f"{args.bundle}: does NOT verify ({len(checked.problems)} problems):")
        for problem in checked.problems:
            print(f"  {problem}")
        return 1
    manifest = checked.manifest
    image = manifest["image"]
    commit = (manifest.get("harness", {}).get("git") or {}).get("commit", "unknown")
    print(
        f"{args.bundle}: verifies: method {manifest['method']['name']} v{manifest['method']['version']}, "
        f"image {image['reference']} ({image['image_id']}), {len(checked.runs)} runs, {checked.files} files, "
        f"made {manifest['created']} with harness commit {commit}"
    )
    return 0
