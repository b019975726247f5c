#!/usr/bin/env bash
# A real single-node SLURM for ttlaunch's tests, from Debian's packages, without systemd:
# munged, MariaDB, slurmdbd (so sacct and seff work), slurmctld and slurmd, on loopback only.
#
#   scripts/testcluster.sh install   install the packages and seff (needs root and apt)
#   scripts/testcluster.sh start     install if needed, then start every daemon not running
#   scripts/testcluster.sh stop      stop the daemons this script started (by their pid files)
#   scripts/testcluster.sh status    say which of them run
#
# Idempotent. State, logs and pid files live in $TTLAUNCH_CLUSTER_DIR
# (default /var/tmp/ttlaunch-testcluster). Jobs run as root or as the unprivileged user
# $TTLAUNCH_TEST_USER (default ttltest), which start creates.
set -euo pipefail

STATE=${TTLAUNCH_CLUSTER_DIR:-/var/tmp/ttlaunch-testcluster}
TEST_USER=${TTLAUNCH_TEST_USER:-ttltest}
CLUSTER=ttlaunch
CTLD_PORT=16817 SLURMD_PORT=16818 DBD_PORT=16819 DB_PORT=16306 SPARE_PORT=16820
DB_PASS=ttlaunch-test-only   # loopback-only database of a throwaway test cluster
CONF_DIR=/etc/slurm
MARKER="# Written by ttlaunch scripts/testcluster.sh"
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server mariadb-client libslurm-perl libslurmdb-perl)

say() { echo "testcluster: $*" >&2; }
die() { say "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # description seconds command...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what did not come up in ${seconds}s (logs: $STATE/log)"
}

install_packages() {
  if ! dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2>/dev/null | grep -qv "install ok installed" \
      && [ "$(dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2>/dev/null | wc -l)" = "${#PACKAGES[@]}" ]; then
    say "packages already installed"
  else
    # Keep package scripts from starting daemons (no systemd here; we start them ourselves).
    local created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
    fi
    say "installing ${PACKAGES[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    [ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d
  fi
  command -v seff >/dev/null || install_seff
}

install_seff() {
  # seff is not packaged in bookworm: it is a perl script in SLURM's source package.
  local version work sources
  version=$(dpkg-query -W -f='${Version}' slurm-wlm)
  work=$(mktemp -d)
  mkdir -p "$work/sources.list.d" "$work/lists/partial"
  for sources in /etc/apt/sources.list.d/*.sources; do
    sed 's/^Types: deb$/Types: deb-src/' "$sources" > "$work/sources.list.d/$(basename "$sources")"
  done
  local apt=(apt-get -qq -o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$work/sources.list.d"
             -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
  say "fetching seff from slurm-wlm $version sources"
  "${apt[@]}" update
  (cd "$work" && "${apt[@]}" source --download-only "slurm-wlm=$version" >/dev/null)
  tar -xzf "$work"/slurm-wlm_*.orig.tar.gz -C "$work" --wildcards '*/contribs/seff/seff'
  grep -v '^use lib' "$work"/*/contribs/seff/seff > /usr/local/bin/seff
  chmod 755 /usr/local/bin/seff
  rm -rf "$work"
}

write_configs() {
  local host mem
  host=$(hostname -s)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
  mkdir -p "$CONF_DIR"
  if [ -e "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and is not ours; not touching a real cluster's config"
  fi
  # Written beside and renamed over: clients reading it meanwhile never see a half-written file.
  cat > "$CONF_DIR/.slurm.conf.new" <<CONF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=slurm
AuthType=auth/munge
# A requeued job is eligible again after cred_expire+1 s (121 s by default).
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
MinJobAge=10
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without it each job claims all memory and jobs run one at a time.
DefMemPerCPU=1000
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
# No cgroups here: steps above their memory request are killed and end OUT_OF_MEMORY.
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# The job completion log is what sacct -c reads: ttlaunch's fallback without accounting.
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# Advertise more CPUs than the machine has, so several test jobs run at once (a sweep of 9
# single-CPU runs and its monitor job too).
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=16 RealMemory=$mem State=UNKNOWN
# A second node with no daemon, always down (Debian's slurmd runs one node per host): a job
# that leaves the first out (sbatch --exclude) is accepted and waits for it. Its port has no
# listener, so it never answers for it.
NodeName=$host-spare NodeAddr=127.0.0.1 Port=$SPARE_PORT CPUs=16 RealMemory=$mem State=DOWN Reason=no_daemon
# Preemption as on clusters with a scavenger tier: a job in urgent requeues what runs in debug
# (cancels it if it cannot be requeued), after the user's signal (submitit's USR2) and
# GraceTime to save.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
PartitionName=debug Nodes=$host,$host-spare Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=30
PartitionName=urgent Nodes=$host MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF Hidden=YES
CONF
  cmp -s "$CONF_DIR/.slurm.conf.new" "$CONF_DIR/slurm.conf" || CONF_CHANGED=1
  mv "$CONF_DIR/.slurm.conf.new" "$CONF_DIR/slurm.conf"
  cat > "$CONF_DIR/slurmdbd.conf" <<CONF
$MARKER
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=slurm
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
  chown slurm:slurm "$CONF_DIR/slurmdbd.conf"
  chmod 600 "$CONF_DIR/slurmdbd.conf"
}

prepare_dirs() {
  mkdir -p "$STATE"/{run,log,slurmctld,slurmd,mysql,mysqld,munge}
  chmod 755 "$STATE"
  chown slurm:slurm "$STATE/slurmctld" "$STATE/run" "$STATE/log"
  chmod 1777 "$STATE/run" "$STATE/log"
  chown mysql:mysql "$STATE/mysql" "$STATE/mysqld"
  chown munge:munge "$STATE/munge"
  mkdir -p /run/munge && chown munge:munge /run/munge
}

start_munge() {
  alive "$STATE/munge/munged.pid" && return
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key; }
  runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log"
  wait_for munged 10 munge -n
}

db() { mariadb --no-defaults --socket="$STATE/mysqld/mysql.sock" -u root "$@"; }

start_mariadb() {
  alive "$STATE/run/mariadb.pid" && return
  if [ ! -d "$STATE/mysql/mysql" ]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql" \
      --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.log" 2>&1
  fi
  setsid mariadbd --no-defaults --user=mysql --datadir="$STATE/mysql" --socket="$STATE/mysqld/mysql.sock" \
    --bind-address=127.0.0.1 --port=$DB_PORT --pid-file="$STATE/run/mariadb.pid" \
    --log-error="$STATE/log/mariadb.log" --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 \
    </dev/null >/dev/null 2>&1 &
  wait_for mariadb 30 db -e "select 1"
  db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
         CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurm() {
  if [ "${CONF_CHANGED:-0}" = 1 ] && alive "$STATE/run/slurmctld.pid"; then
    # Restarted, not reconfigured: SLURM 22.05 learns of added or removed nodes only at start.
    say "slurm.conf changed: slurmctld and slurmd restart"
    stop_daemon "$STATE/run/slurmd.pid"
    stop_daemon "$STATE/run/slurmctld.pid"
  fi
  if ! alive "$STATE/run/slurmdbd.pid"; then
    slurmdbd
    wait_for slurmdbd 30 sacctmgr -n list cluster
  fi
  if ! alive "$STATE/run/slurmctld.pid"; then
    slurmctld
    wait_for slurmctld 30 scontrol ping
  fi
  if ! alive "$STATE/run/slurmd.pid"; then
    slurmd
  fi
  wait_for "node $(hostname -s)" 30 bash -c "sinfo -h -n $(hostname -s) -o %T | grep -qE '^(idle|mixed|allocated)'"
  # Down whatever state slurmctld saved for it: no job may start there.
  scontrol update nodename="$(hostname -s)-spare" state=down reason=no_daemon
}

add_users() {
  id -u "$TEST_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$TEST_USER"
  sacctmgr -i -Q add account default Description=tests Organization=ttlaunch >/dev/null 2>&1 || true
  local user
  for user in root "$TEST_USER"; do
    sacctmgr -n -P list assoc user="$user" format=user | grep -qx "$user" \
      || sacctmgr -i -Q add user "$user" DefaultAccount=default >/dev/null
  done
}

start() {
  local began=$SECONDS
  install_packages
  prepare_dirs
  write_configs
  start_munge
  start_mariadb
  start_slurm
  add_users
  say "up in $((SECONDS - began))s: partition debug on $(hostname -s); logs in $STATE/log"
}

stop_daemon() { # pidfile: ends the daemon it names, if alive (SIGKILL after 10 s)
  local pid
  alive "$1" || return 0
  pid=$(cat "$1")
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  say "stopped $(basename "$1" .pid) ($pid)"
}

stop() {
  local pidfile
  for pidfile in "$STATE/run/slurmd.pid" "$STATE/run/slurmctld.pid" "$STATE/run/slurmdbd.pid" \
                 "$STATE/run/mariadb.pid" "$STATE/munge/munged.pid"; do
    stop_daemon "$pidfile"
  done
}

status() {
  local pidfile running=0
  for pidfile in "$STATE/munge/munged.pid" "$STATE/run/mariadb.pid" "$STATE/run/slurmdbd.pid" \
                 "$STATE/run/slurmctld.pid" "$STATE/run/slurmd.pid"; do
    if alive "$pidfile"; then echo "$(basename "$pidfile" .pid): running ($(cat "$pidfile"))"; running=$((running + 1))
    else echo "$(basename "$pidfile" .pid): stopped"; fi
  done
  [ "$running" = 5 ]
}

case "${1:-}" in
  install) install_packages ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
