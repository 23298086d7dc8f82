#!/usr/bin/env bash
# Start a single-node SLURM (with accounting) on loopback, for the integration test.
#   tests/slurm/start.sh DIR     writes DIR/slurm.conf, DIR/*.pid, DIR/*.log
# Needs root and Debian's munge slurmctld slurmd slurm-client slurmdbd
# mariadb-server (.ci/run installs them). No systemd: the daemons are started
# directly, detached, with their standard streams closed, so that they never
# hold a caller's pipes open. tests/slurm/stop.sh DIR stops them by pid.
set -euo pipefail
dir=$(realpath -m "$1")
mkdir -p "$dir"/{state,spool}
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(free -m | awk 'NR==2{print $2}') * 3 / 4 ))
export SLURM_CONF="$dir/slurm.conf"

detach() { # detach CMD...: run in a new session, no inherited streams or fds
  setsid "$@" </dev/null >/dev/null 2>&1 &
}

# munge: the key must belong to munge, mode 0400; munged runs as munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid </dev/null >/dev/null 2>&1
fi
cp /run/munge/munged.pid "$dir/munged.pid" 2>/dev/null || pgrep -x munged >"$dir/munged.pid"

# MariaDB on its Unix socket only, for slurmdbd
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
db_up() { mariadb-admin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1; }
if ! db_up; then
  rm -f /run/mysqld/mysqld.sock # a stale socket from the package's own start
  # mariadbd writes its pid and log as mysql, who may not reach $dir
  detach mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
    --pid-file=/run/mysqld/featevo.pid --log-error=/run/mysqld/featevo.log
  for _ in $(seq 60); do db_up && break; sleep 0.5; done
  db_up || { echo "MariaDB did not start; see /run/mysqld/featevo.log" >&2; exit 1; }
  cp /run/mysqld/featevo.pid "$dir/mariadbd.pid"
fi

cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=featevo_slurm_acct
PidFile=$dir/slurmdbd.pid
LogFile=$dir/slurmdbd.log
EOF
chmod 600 "$dir/slurmdbd.conf"

cat >"$SLURM_CONF" <<EOF
ClusterName=featevo
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/none
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=featevo Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

# job steps (the srun inside each batch job) read the default path, not
# SLURM_CONF: link it there unless the machine has a SLURM of its own
if [ ! -e /etc/slurm/slurm.conf ] || [ -L /etc/slurm/slurm.conf ]; then
  mkdir -p /etc/slurm && ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf
fi

# slurmdbd reads slurmdbd.conf from SLURM_CONF's folder
slurmdbd </dev/null >/dev/null 2>&1
for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -n list cluster >/dev/null 2>&1 || { echo "slurmdbd did not start; see $dir/slurmdbd.log" >&2; exit 1; }
sacctmgr -i add cluster featevo >/dev/null 2>&1 || true
slurmctld </dev/null >/dev/null 2>&1
slurmd </dev/null >/dev/null 2>&1
sacctmgr -i add account featevo Cluster=featevo >/dev/null 2>&1 || true
sacctmgr -i add user root Account=featevo Cluster=featevo >/dev/null 2>&1 || true
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^idle' && { echo "SLURM up: $SLURM_CONF"; exit 0; }
  sleep 0.5
done
echo "SLURM did not come up; logs in $dir" >&2
exit 1
