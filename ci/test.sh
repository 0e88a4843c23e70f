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

make test PYTEST_ARGS="${PYTEST_ARGS:-}"
