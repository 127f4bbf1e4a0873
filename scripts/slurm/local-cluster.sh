#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for tests (tests/slurm.rs) and for trying
# scripts/slurm/shard.sbatch without a real cluster (docs/scaling.md).
#
#   scripts/slurm/local-cluster.sh start DIR   # munged + slurmctld + slurmd, all state in DIR
#   export SLURM_CONF=DIR/slurm.conf           # then sbatch, squeue, scancel, scontrol, sinfo
#   scripts/slurm/local-cluster.sh stop DIR
#
# Needs Debian's slurmctld, slurmd, slurm-client and munge packages and root (the daemons run
# as root, no cgroups, no accounting database). `start` returns once the node is idle.
set -euo pipefail
CMD=${1:?usage: local-cluster.sh start|stop DIR}
DIR=$(mkdir -p "${2:?usage: local-cluster.sh start|stop DIR}" && cd "$2" && pwd)
NODE=$(hostname -s)

# Stops the daemons (TERM, then KILL whatever is still running 10 s later) and waits for
# them, so the caller may delete DIR.
stop() {
  local pids=()
  for pidfile in "$DIR"/slurmd.pid "$DIR"/slurmctld.pid "$DIR"/munged.pid; do
    [ -f "$pidfile" ] && pids+=("$(cat "$pidfile")")
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$DIR"/*.pid
}

if [ "$CMD" = stop ]; then
  stop
  exit 0
fi
[ "$CMD" = start ] || { echo "usage: local-cluster.sh start|stop DIR" >&2; exit 2; }
for tool in munged mungekey slurmctld slurmd sinfo; do
  command -v "$tool" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
  command -v "$tool" >/dev/null 2>&1 || { echo "local-cluster: $tool not found (apt-get install slurmctld slurmd slurm-client munge)" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "local-cluster: needs root (the daemons run as root)" >&2; exit 3; }

mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log"
chmod 700 "$DIR/munge"
[ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key" --force
chmod 600 "$DIR/munge/munge.key"
munged --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
  --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed" --force

CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > "$DIR/slurm.conf" <<CONF
ClusterName=ticketbench-test
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
SlurmctldPort=$((6817 + RANDOM % 1000))
SlurmdPort=$((7817 + RANDOM % 1000))
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
NodeName=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$DIR/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
# Wait for the node to report idle (bounded: 60 tries, one second apart).
for _ in $(seq 60); do
  if sinfo -h -n "$NODE" -o %t 2>/dev/null | grep -q '^idle'; then
    echo "local-cluster: $NODE idle; export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "local-cluster: the node did not come up; logs in $DIR/log" >&2
stop
exit 1
