"""keyword_filter: an external HMU-Bench method, a prompt blocklist, in one file.

It speaks the method container contract (interface version 1) with its own code: it reads and writes only
the contract's files and never uses the benchmark's method entrypoint (`hmu method`). It imports
`benchmark.backbone` only to read and write model folders and to generate, since the backbone's
checkpoint format is part of the contract.

    keyword_filter.py describe     print the method's description (one JSON object)
    keyword_filter.py unlearn      /hmu/input/request.json -> /hmu/output/model/ + result.json
    keyword_filter.py generate     /hmu/input/request.json -> /hmu/output/motions.npz + result.json

`unlearn` leaves the weights as they are: it saves the base model again with the concept's keywords in its
provenance (`model.json`), which is part of the model's hash, so the blocklist travels with the model.
`generate` replaces every prompt holding a blocklisted word (or an inflection: kicks, kicked, kicking) by a
neutral prompt, keeping its id, length, repeats and seed, and generates with the model as it is.

A real safety baseline: it stops explicit prompts ("a person kicks") and misses implicit ones ("swings the
right leg around high"), which is what the benchmark's implicit prompt set measures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

NAME = "keyword_filter"
VERSION = 1
INTERFACE_VERSION = 1
DEFAULTS = {"neutral_prompt": "a person stands still"}

DESCRIPTION = {
    "schema": "hmu.method-description/1",
    "name": NAME,
    "version": VERSION,
    "interface_version": INTERFACE_VERSION,
    "description": "A prompt blocklist: prompts naming the concept are replaced by a neutral prompt.",
    "parameters": DEFAULTS,
    "sweep": {},
    "backbones": ["momask"],
    "resources": {"cpus": 1, "memory_gb": 2, "gpu": "optional", "time_limit_s": 600},
}

SUFFIXES = ("", "s", "es", "d", "ed", "ing", "er", "ers")
"""Inflections a keyword matches with: kick -> kicks, kicked, kicking; a doubled last letter too (hitting)."""


class BadInput(Exception):
    """The request cannot be used (exit status 2)."""


def blocked(text: str, keywords: list[str]) -> bool:
    """True when a word of `text` is a keyword or one of its inflections."""
    for word in re.findall(r"[a-z]+", text.lower()):
        for keyword in keywords:
            rest = word[len(keyword) :] if word.startswith(keyword) else None
            if rest is None:
                continue
            if rest in SUFFIXES or (rest[:1] == keyword[-1:] and rest[1:] in ("ing", "ed", "er")):
                return True
    return False


def read_request(input_dir: Path) -> dict:
    path = input_dir / "request.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInput(f"{path}: cannot read the request: {error}") from None


def resolve(input_dir: Path, value: str | None) -> Path | None:
    """A request path: relative to the request's folder, or absolute as it is."""
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else input_dir / path


def unlearn(input_dir: Path, output_dir: Path, result: dict) -> None:
    from benchmark.backbone.model import load_model, model_hash, save_model

    request = read_request(input_dir)
    unknown = sorted(set(request.get("parameters", {})) - set(DEFAULTS))
    if unknown:
        raise BadInput(f"{input_dir / 'request.json'}: field 'parameters.{unknown[0]}': unknown parameter")
    parameters = {**DEFAULTS, **request.get("parameters", {})}
    keywords = sorted({keyword.lower() for keyword in request["concept"]["keywords"]})
    base = resolve(input_dir, request["base_model"])
    model = load_model(base, device="cpu")  # the weights are only copied: the CPU is enough
    provenance = {
        "kind": "unlearned",
        "method": NAME,
        "method_version": VERSION,
        "interface_version": INTERFACE_VERSION,
        "parameters": parameters,
        "parent": model_hash(base),
        "task": request["task"],
        "concept": request["concept"]["name"],
        "seed": request["seed"],
        "record": {"blocklist": keywords, "neutral_prompt": parameters["neutral_prompt"]},
    }
    save_model(
        model.backbone,
        output_dir / "model",
        text_encoder_identity=model.card.text_encoder,
        dataset=model.card.dataset,
        provenance=provenance,
    )
    result.update(
        device="cpu",
        parameters=parameters,
        outputs=["model"],
        model_hash=model_hash(output_dir / "model"),
        messages=[f"blocklist of {len(keywords)} keywords: {', '.join(keywords)}; weights unchanged"],
    )


def generate(input_dir: Path, output_dir: Path, result: dict) -> None:
    from benchmark.backbone.generation import (
        GenerationSettings,
        generate_motions,
        read_prompts,
        text_encoder_for,
        write_motions,
    )
    from benchmark.backbone.model import load_model, resolve_device

    request = read_request(input_dir)
    device = resolve_device(request.get("device"))
    model = load_model(resolve(input_dir, request["model"]), device=device)
    provenance = model.card.provenance
    record = provenance.get("record", {}) if provenance.get("method") == NAME else {}
    keywords = record.get("blocklist", [])
    neutral = record.get("neutral_prompt", DEFAULTS["neutral_prompt"])
    prompts = read_prompts(resolve(input_dir, request["prompts"]))
    named = [blocked(prompt.text, keywords) for prompt in prompts]
    replaced = [replace(p, text=neutral) if hit else p for p, hit in zip(prompts, named, strict=True)]
    clip = resolve(input_dir, request.get("clip_weights"))
    encoder = text_encoder_for(model.card, device, clip_weights=clip)
    settings = GenerationSettings(**request.get("settings", {}))
    motions = generate_motions(model.backbone, encoder, replaced, settings)
    write_motions(output_dir / "motions.npz", motions, feature_dim=model.card.dataset.feature_dim)
    note = f"{sum(named)} of {len(prompts)} prompts named the concept and became {neutral!r}"
    if not keywords:
        note = "the model holds no blocklist (not made by keyword_filter's unlearn): no prompt was replaced"
    result.update(device=str(device), outputs=["motions.npz"], num_motions=len(motions), messages=[note])


def run(verb: str, input_dir: Path, output_dir: Path) -> int:
    """Run `verb`, write result.json last (also on failure, after removing partial outputs); the exit
    status: 0 ok, 1 the method failed, 2 the input is unusable."""
    began = time.perf_counter()
    result = {
        "schema": "hmu.method-result/1",
        "status": "ok",
        "verb": verb,
        "method": NAME,
        "method_version": VERSION,
        "interface_version": INTERFACE_VERSION,
        "device": None,
        "parameters": {},
        "messages": [],
        "outputs": [],
    }
    code = 0
    try:
        (unlearn if verb == "unlearn" else generate)(input_dir, output_dir, result)
    except Exception as error:  # recorded in result.json: the harness reads why, never a bare crash
        traceback.print_exc()
        code = 2 if isinstance(error, BadInput | KeyError) else 1
        for entry in output_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        result.update(status="failed", error=str(error) or repr(error), error_type=type(error).__name__)
        result.update(outputs=[], model_hash=None, num_motions=None)
    result["wall_seconds"] = round(time.perf_counter() - began, 4)
    temporary = output_dir / ".result.json.tmp"
    temporary.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, output_dir / "result.json")
    return code


def main(argv: list[str]) -> int:
    verb = argv[1] if len(argv) > 1 else "describe"
    if verb == "describe":
        print(json.dumps(DESCRIPTION))
        return 0
    if verb not in ("unlearn", "generate"):
        print(f"keyword_filter: unknown verb {verb!r}: describe, unlearn or generate", file=sys.stderr)
        return 2
    # The contract's folders; other ones may be given to try the script outside a container.
    input_dir = Path(argv[2]) if len(argv) > 2 else Path("/hmu/input")
    output_dir = Path(argv[3]) if len(argv) > 3 else Path("/hmu/output")
    return run(verb, input_dir, output_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
