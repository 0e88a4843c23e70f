"""The Docker engine, through the `docker` command-line client.

    >>> docker = DockerCLI()
    >>> docker.answers()                                   # True when an engine answers within a few seconds
    >>> docker.image_id("hmu/method/original:latest")      # 'sha256:...' or None
    >>> docker.check(["image", "ls"]).stdout

Why the CLI and not the Python SDK: the sandbox is a list of `docker run` flags that this module writes into
every stage's log verbatim, so that anyone can re-run a stage by hand with exactly the same sandbox; the
CLI streams `docker import` from `tar` and build output without buffering; it adds no dependency to the
harness or the images; and it talks to whatever engine the user's client is set up for (`DOCKER_HOST`,
contexts, rootless Docker). The price is parsing: everything read back is JSON (`--format '{{json .}}'`,
`docker inspect`).

Builds run through the legacy builder (`DOCKER_BUILDKIT=0`): the engines this project runs on have no
BuildKit, and the Dockerfiles need nothing beyond it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchmark.errors import HMUError

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 10.0
"""How long `answers()` waits for the engine before deciding there is none."""


class DockerError(HMUError):
    """The docker client is missing, the engine does not answer, or a docker command failed."""


@dataclass(frozen=True)
class DockerCLI:
    """Runs `docker` commands; one instance per engine (it holds no state but where the client is)."""

    binary: str = "docker"
    """The client: a name looked up on PATH, or a path."""

    def path(self) -> str | None:
        """The client's full path, or None when there is no client."""
        return shutil.which(self.binary)

    def environment(self) -> dict[str, str]:
        """The client's environment: this process's, with the legacy builder forced."""
        return {**os.environ, "DOCKER_BUILDKIT": "0"}

    def argv(self, args: Sequence[str]) -> list[str]:
        """The full command line of `docker <args>`; a DockerError when there is no client."""
        path = self.path()
        if path is None:
            raise DockerError(f"no docker client ({self.binary!r} is not on PATH): run ci/start-docker.sh")
        return [path, *args]

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: IO[bytes] | int | None = None,
        stdout: IO[Any] | int | None = subprocess.PIPE,
        stderr: IO[Any] | int | None = subprocess.PIPE,
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker <args>` and return its result whatever its exit status (text output)."""
        return subprocess.run(
            self.argv(args),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=True,
            timeout=timeout,
            env=self.environment(),
            check=False,
        )

    def check(self, args: Sequence[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run `docker <args>`; a non-zero exit status is a DockerError quoting its stderr."""
        try:
            result = self.run(args, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise DockerError(f"docker {' '.join(args[:3])} did not answer within {timeout} s") from error
        if result.returncode != 0:
            raise DockerError(
                f"docker {' '.join(args[:3])} failed (exit {result.returncode}): {result.stderr.strip()}"
            )
        return result

    def answers(self, timeout: float = ANSWER_TIMEOUT_S) -> bool:
        """True when a client exists and an engine answers within `timeout` seconds."""
        return self.why_not(timeout) is None

    def why_not(self, timeout: float = ANSWER_TIMEOUT_S) -> str | None:
        """None when an engine answers; otherwise why not, in one line."""
        if self.path() is None:
            return f"no docker client ({self.binary!r} is not on PATH)"
        try:
            result = self.run(["version", "--format", "{{.Server.Version}}"], timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"the Docker engine did not answer within {timeout:g} s"
        if result.returncode != 0 or not result.stdout.strip():
            lines = (result.stderr or "no server version").strip().splitlines()
            return f"no Docker engine answers: {lines[-1] if lines else 'no server version'}"
        return None

    def inspect(self, kind: str, reference: str) -> dict[str, Any] | None:
        """`docker <kind> inspect <reference>` as a dict (`kind`: image or container); None if absent."""
        result = self.run([kind, "inspect", "--format", "{{json .}}", reference], timeout=60)
        if result.returncode != 0:
            if "No such" in result.stderr or "no such" in result.stderr:
                return None
            raise DockerError(f"docker {kind} inspect {reference} failed: {result.stderr.strip()}")
        data = json.loads(result.stdout)
        if not isinstance(data, dict):
            raise DockerError(f"docker {kind} inspect {reference}: unexpected output {result.stdout[:200]!r}")
        return data

    def image_id(self, reference: str) -> str | None:
        """The image's ID (`sha256:...`), or None when the engine has no such image."""
        data = self.inspect("image", reference)
        return None if data is None else str(data["Id"])

    def image_labels(self, reference: str) -> dict[str, str]:
        """The image's labels ({} when it has none); a DockerError when there is no such image."""
        data = self.inspect("image", reference)
        if data is None:
            raise DockerError(f"no image {reference}")
        return dict((data.get("Config") or {}).get("Labels") or {})

    def tag(self, source: str, target: str) -> None:
        """Give the image `source` the additional name `target`."""
        self.check(["tag", source, target], timeout=60)

    def build(
        self,
        context: Path,
        dockerfile: Path,
        tag: str,
        *,
        build_args: Mapping[str, str],
        labels: Mapping[str, str],
        log: IO[str],
    ) -> None:
        """`docker build` (legacy builder) of `dockerfile` with `context`; the build's output goes to `log`.
        Never pulls: every parent image is on the engine already."""
        args = ["build", "--rm", "--force-rm", "--file", str(dockerfile), "--tag", tag]
        for name, value in build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        for name, value in labels.items():
            args += ["--label", f"{name}={value}"]
        log.write("$ docker " + " ".join(args + [str(context)]) + "\n")
        log.flush()
        result = self.run([*args, str(context)], stdout=log, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise DockerError(f"docker build of {tag} failed (exit {result.returncode}); see {log.name}")

    def remove_container(self, name: str) -> None:
        """Remove a container (killing it if it runs); quiet when it is gone already. Never raises (it runs in
        `finally` blocks): a failure is logged with the command that cleans up by hand."""
        try:
            result = self.run(["rm", "--force", "--volumes", name], timeout=120)
        except (DockerError, OSError, subprocess.SubprocessError) as error:
            logger.warning("could not remove container %s (docker rm -f %s): %s", name, name, error)
            return
        if result.returncode != 0 and "No such container" not in result.stderr:
            logger.warning("could not remove container %s: %s", name, result.stderr.strip())
