#!/usr/bin/env bash
# Stop what tests/slurm/start.sh DIR started, by the pids it recorded.
dir=$(realpath -m "$1")
pids() { for d in slurmd slurmctld slurmdbd mariadbd munged; do cat "$dir/$d.pid" 2>/dev/null; done; }
for p in $(pids); do kill "$p" 2>/dev/null; done
sleep 1
for p in $(pids); do kill -9 "$p" 2>/dev/null; done
[ "$(readlink /etc/slurm/slurm.conf)" = "$dir/slurm.conf" ] && rm -f /etc/slurm/slurm.conf
exit 0
