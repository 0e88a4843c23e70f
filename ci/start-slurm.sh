#!/usr/bin/env bash
# Make a one-node Slurm cluster answer on this machine, for the Slurm runner's tests and
# `make bench RUNNER=slurm`. Idempotent: nothing is installed, written or started when the cluster this
# script configured answers already.
#
#   bash ci/start-slurm.sh                     # then: export SLURM_CONF=$PWD/build/slurm/slurm.conf; sinfo
#
# 1. Installs slurm-wlm and munge with apt when missing (Debian 12: Slurm 22.05). apt reads the host's own
#    configured Debian mirror; nothing here names one.
# 2. Starts munged (the packages made its key) when `munge -n | unmunge` fails.
# 3. Writes $HMU_SLURM_DIR/slurm.conf (default build/slurm/) for this machine: its host name, its CPU count
#    and memory as `slurmd -C` reports them, one partition `debug`, state, spool, logs and the job-completion
#    file (jobcomp/filetxt: there is no slurmdbd, so no sacct) all under that folder.
# 4. Starts slurmctld and slurmd in the background (there is no systemd), their logs in $HMU_SLURM_DIR/log/.
# 5. Waits up to $HMU_SLURM_WAIT_S seconds (default 60) until `sinfo` shows the node idle, then prints the
#    `export SLURM_CONF=...` line. The tests read the configuration from $SLURM_CONF or, when unset, from
#    build/slurm/slurm.conf.
# Memory is enforced without cgroups (this machine's kernel gives Slurm none): jobacct_gather samples each
# job every second and OverMemoryKill ends a job over its --mem; Slurm then records OUT_OF_MEMORY.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${HMU_SLURM_DIR:-$PWD/build/slurm}"
CONF="$DIR/slurm.conf"
WAIT_S="${HMU_SLURM_WAIT_S:-60}"
HOST="$(hostname -s)"

node_state() {
    SLURM_CONF="$CONF" timeout 10 sinfo --noheader --nodes="$HOST" --format=%T 2>/dev/null | head -n 1
}

if [ -f "$CONF" ] && command -v sinfo >/dev/null 2>&1; then
    state="$(node_state || true)"
    if [ "$state" = "idle" ] || [ "$state" = "mixed" ] || [ "$state" = "allocated" ]; then
        echo "ci/start-slurm.sh: the cluster answers already (node $HOST $state)"
        echo "export SLURM_CONF=$CONF"
        exit 0
    fi
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ci/start-slurm.sh: no cluster answers at $CONF and starting one needs root" >&2
    exit 1
fi

missing=()
command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || missing+=(munge)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "ci/start-slurm.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# munge: the key comes with the package; the daemon needs its run folder.
if ! (munge -n | unmunge) >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
    mkdir -p /run/munge
    chown munge:munge /run/munge
    echo "ci/start-slurm.sh: starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do (munge -n | unmunge) >/dev/null 2>&1 && break; sleep 0.1; done
    (munge -n | unmunge) >/dev/null 2>&1 || { echo "ci/start-slurm.sh: munged does not answer" >&2; exit 1; }
fi

# slurm.conf from what slurmd sees of this machine.
detected="$(slurmd -C | head -n 1)"
cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$detected")"
memory="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")"
address="$(getent hosts "$HOST" | awk '{print $1; exit}')"
address="${address:-127.0.0.1}"
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
cat >"$CONF.new" <<EOF
# Written by ci/start-slurm.sh for host $HOST ($cpus CPUs, $memory MiB): a one-node cluster.
ClusterName=hmu
SlurmctldHost=$HOST($address)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
KillWait=5
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$HOST NodeAddr=$address CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
mv "$CONF.new" "$CONF"
export SLURM_CONF="$CONF"

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if alive "$DIR/slurmctld.pid"; then
    scontrol reconfigure >/dev/null 2>&1 || true
else
    echo "ci/start-slurm.sh: starting slurmctld, log in $DIR/log/"
    # setsid: the daemons outlive this script and are not in its process group.
    setsid slurmctld -D -f "$CONF" >"$DIR/log/slurmctld.out" 2>&1 </dev/null &
fi
if ! alive "$DIR/slurmd.pid"; then
    echo "ci/start-slurm.sh: starting slurmd"
    setsid slurmd -D -f "$CONF" >"$DIR/log/slurmd.out" 2>&1 </dev/null &
fi

started=$(date +%s)
while :; do
    state="$(node_state || true)"
    case "$state" in
        idle|mixed|allocated) break ;;
        down*|drain*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    if [ $(( $(date +%s) - started )) -ge "$WAIT_S" ]; then
        echo "ci/start-slurm.sh: node $HOST is '${state:-not listed}' after ${WAIT_S} s; the end of the logs:" >&2
        tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
        exit 1
    fi
    sleep 0.5
done
echo "ci/start-slurm.sh: node $HOST is $state after $(( $(date +%s) - started )) s ($cpus CPUs, $memory MiB)"
echo "export SLURM_CONF=$CONF"
