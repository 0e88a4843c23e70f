#!/usr/bin/env bash
# Run the test suite as CI does: the README's `make test`, with the reference data required.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real HumanML3D reference files sit beside the clone; the tests fail (not skip) without them in CI.
export CI="${CI:-true}"
export HMU_SHARED_DIR="${HMU_SHARED_DIR:-$(cd .. && pwd)/shared}"
if [ ! -d "$HMU_SHARED_DIR/data/humanml3d-reference" ]; then
    echo "ci/test.sh: reference data not found at $HMU_SHARED_DIR/data/humanml3d-reference" >&2
    exit 1
fi

# The container tests need a real engine: CI installs and starts one (they fail without it when CI is set).
bash ci/start-docker.sh

# The Slurm runner's tests need a real cluster: a one-node one, its slurm.conf in build/slurm/ (they fail
# without it when CI is set).
bash ci/start-slurm.sh
export SLURM_CONF="$PWD/build/slurm/slurm.conf"

# The leaderboard's browser tests drive Debian's headless Chromium (they fail without it when CI is set).
# Quick when installed; the package lists are refreshed only when the install needs it.
if ! command -v chromium >/dev/null 2>&1; then
    echo "ci/test.sh: installing chromium for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }
fi

make test PYTEST_ARGS="${PYTEST_ARGS:-}"
