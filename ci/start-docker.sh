#!/usr/bin/env bash
# Make a Docker engine answer on this machine, for the container tests and `make images`. Idempotent:
# nothing is installed or started when an engine already answers.
#
#   bash ci/start-docker.sh          # then: docker info
#
# 1. Installs docker.io (engine, containerd, runc) and debootstrap (the offline base image) with apt when
#    missing. apt reads the host's own configured Debian mirror; nothing here names one.
# 2. Starts `dockerd --storage-driver=overlay2` in the background (there is no systemd), its log in
#    $HMU_DOCKERD_LOG (default build/dockerd.log). overlay2, not vfs: vfs copies the whole image for every
#    container (15-55 s per run of a torch image against 0.3 s).
# 3. Waits up to $HMU_DOCKER_WAIT_S seconds (default 60) for `docker info`; on timeout, prints the end of
#    the daemon's log and exits 1.
# The default bridge network stays; the benchmark's containers run with `--network none`.
set -euo pipefail
cd "$(dirname "$0")/.."

LOG="${HMU_DOCKERD_LOG:-$PWD/build/dockerd.log}"
WAIT_S="${HMU_DOCKER_WAIT_S:-60}"

engine_answers() {
    command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1
}

if engine_answers; then
    echo "ci/start-docker.sh: a Docker engine answers already"
    exit 0
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ci/start-docker.sh: ${missing[*]} missing and not root: install them or start an engine" >&2
        exit 1
    fi
    echo "ci/start-docker.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ci/start-docker.sh: no engine answers and starting dockerd needs root" >&2
    exit 1
fi

# A daemon may be starting already (a second call right after the first): wait for it rather than
# starting another one on the same socket. dockerd writes its pid to /var/run/docker.pid.
running=false
if [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    running=true
fi
if [ "$running" = false ]; then
    mkdir -p "$(dirname "$LOG")"
    echo "ci/start-docker.sh: starting dockerd (overlay2), log in $LOG"
    # setsid: the daemon outlives this script and is not in its process group.
    setsid dockerd --storage-driver=overlay2 >"$LOG" 2>&1 < /dev/null &
fi

started=$(date +%s)
until engine_answers; do
    if [ $(( $(date +%s) - started )) -ge "$WAIT_S" ]; then
        echo "ci/start-docker.sh: the Docker engine did not answer within ${WAIT_S} s; the end of $LOG:" >&2
        tail -n 30 "$LOG" >&2 || true
        exit 1
    fi
    sleep 0.5
done
driver="$(docker info --format '{{.Driver}}')"
echo "ci/start-docker.sh: the Docker engine answers after $(( $(date +%s) - started )) s (storage driver $driver)"
if [ "$driver" != "overlay2" ]; then
    echo "ci/start-docker.sh: warning: storage driver $driver, not overlay2: containers start slowly" >&2
fi
