"""`hmu render`: draw a motion as stick figures, a PNG strip or an animated GIF (chosen by the file name).

hmu render --data data/embedded --id 000012                   # 000012.png, captions on top
hmu render --data data/embedded --id M000012 --out kick.gif
hmu render --features generated.npy --out sample.png --frames 10
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.errors import DataFormatError, HMUError

EXAMPLES = """\
examples:
  hmu render --data data/embedded --id 000012
  hmu render --data data/embedded --id 000012 --out kick.gif
  hmu render --features motion.npy --out motion.png --frames 10
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="draw a motion as stick figures (PNG strip or animated GIF)",
        description="Draw a motion as stick figures: a strip of poses side by side (.png) or an animation\n"
        "(.gif). The motion comes from a dataset folder (--data with --id) or from a .npy file of\n"
        "263-d features (T, 263) or joint positions (T, 22, 3) (--features).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, metavar="DIR", help="a dataset folder in the HumanML3D layout")
    source.add_argument(
        "--features", type=Path, metavar="FILE.npy", help="features (T, 263) or joints (T, 22, 3)"
    )
    parser.add_argument("--id", dest="motion_id", metavar="ID", help="the motion to draw (with --data)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="output .png or .gif (default: <id>.png)")
    parser.add_argument("--frames", type=int, default=8, metavar="N", help="poses in a PNG strip (default 8)")
    parser.add_argument(
        "--view",
        default="three_quarter",
        choices=("three_quarter", "side", "front"),
        help="camera (default three_quarter)",
    )
    parser.add_argument("--no-caption", action="store_true", help="do not write the captions on the picture")
    parser.set_defaults(func=run_render)


def _load(args: argparse.Namespace) -> tuple:
    """(motion array, caption text, fps, default output name)."""
    import numpy as np

    if args.features is not None:
        if args.motion_id is not None:
            raise HMUError("--id goes with --data, not with --features")
        try:
            motion = np.load(args.features, allow_pickle=False)
        except FileNotFoundError:
            raise DataFormatError(args.features, "file is missing") from None
        except (ValueError, OSError) as error:
            raise DataFormatError(args.features, f"not a readable .npy array ({error})") from None
        return motion, "", 20.0, args.features.with_suffix(".png").name
    from benchmark.data.humanml3d import HumanML3DFolder

    if args.motion_id is None:
        raise HMUError("--data needs --id (the motion to draw)")
    folder = HumanML3DFolder(args.data)
    motion = folder.features(args.motion_id)
    caption = " / ".join(caption.text for caption in folder.captions(args.motion_id))
    return motion, caption, folder.metadata.fps, f"{args.motion_id}.png"


def run_render(args: argparse.Namespace) -> int:
    from benchmark.render import render_gif, render_strip

    motion, caption, fps, default_name = _load(args)
    out: Path = args.out or Path(default_name)
    caption = "" if args.no_caption else caption
    try:
        if out.suffix.lower() == ".gif":
            path = render_gif(motion, out, fps=fps, caption=caption, view=args.view)
        elif out.suffix.lower() == ".png":
            path = render_strip(motion, out, frames=args.frames, fps=fps, caption=caption, views=(args.view,))
        else:
            raise HMUError(f"--out must end in .png or .gif, got {out.name!r}")
    except ValueError as error:
        raise HMUError(str(error)) from None
    print(f"wrote {path}")
    return 0
