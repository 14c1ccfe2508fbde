#!/usr/bin/env bash
# A real single-node Slurm 22.05 for the HPC tests: munged, slurmctld, slurmd and slurmrestd
# (JWT authentication), all on 127.0.0.1, started by hand (no systemd needed).
#
#   bash .ci/slurm.sh DIR            configure under DIR, start what is not running, print env
#   eval "$(bash .ci/slurm.sh DIR)"  ... and export the variables the tests read
#   bash .ci/slurm.sh DIR stop       stop the daemons this script started under DIR
#
# Idempotent: keys are created once, daemons already running are left alone (a changed slurm.conf
# restarts them). Needs root and the Debian packages slurm-wlm munge slurmrestd
# slurm-wlm-jwt-plugin. Progress goes to stderr; only the `export` line goes to stdout. Under
# `set -e`, use `env=$(bash .ci/slurm.sh DIR); eval "$env"` so a failure stops the caller.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash .ci/slurm.sh DIR [stop]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo ".ci/slurm.sh must run as root (it starts Slurm's daemons)" >&2; exit 2; }
DIR=$(mkdir -p "$1" && cd "$1" && pwd)
ACTION=${2:-start}
HOST=$(hostname -s)
CLUSTER=daaas-test
REST_PORT=${DAAAS_TEST_SLURMRESTD_PORT:-6820}
REST_USER=nobody                      # slurmrestd refuses to run as root or SlurmUser
TEST_USERS="hpc-alice:29101 hpc-bob:29102"
CONF=$DIR/slurm.conf
say() { echo "slurm.sh: $*" >&2; }

running() {  # running NAME: true when DIR/NAME.pid names a live process
  [ -s "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null
}

stop_all() {
  local name pid
  for name in slurmrestd slurmd slurmctld munged; do
    if running "$name"; then
      pid=$(cat "$DIR/$name.pid")
      say "stopping $name"
      kill "$pid"
      timeout 30 bash -c "while kill -0 $pid 2>/dev/null; do sleep 0.2; done" \
        || { say "$name (pid $pid) did not stop within 30 s"; exit 1; }
    fi
    rm -f "$DIR/$name.pid"
  done
}

write_keys() {
  mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log"
  chown munge:munge "$DIR/munge"; chmod 0755 "$DIR" "$DIR/munge"
  if [ ! -s "$DIR/munge/munge.key" ]; then
    head -c 1024 /dev/urandom > "$DIR/munge/munge.key"
  fi
  chown munge:munge "$DIR/munge/munge.key"; chmod 0400 "$DIR/munge/munge.key"
  if [ ! -s "$DIR/jwt.key" ]; then
    (umask 077; head -c 32 /dev/urandom > "$DIR/jwt.key")
  fi
  chmod 0600 "$DIR/jwt.key"
}

write_conf() {
  local new="$CONF.new"
  cat > "$new" <<EOF
# Written by .ci/slurm.sh: a single-node test cluster on loopback only.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$DIR/jwt.key
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
PrivateData=jobs
SlurmctldParameters=enable_configless
ReturnToService=2
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=60 State=UP
EOF
  if cmp -s "$new" "$CONF"; then rm "$new"; return; fi
  say "configuration changed: restarting the daemons"
  stop_all
  mv "$new" "$CONF"
  chmod 0644 "$CONF"
}

make_users() {  # the Unix accounts tests submit as; the portal's test users get the same uids
  local entry name uid
  for entry in $TEST_USERS; do
    name=${entry%%:*}; uid=${entry##*:}
    getent passwd "$name" >/dev/null || useradd --uid "$uid" --user-group --create-home \
      --shell /bin/bash "$name"
  done
}

start_daemons() {
  if ! running munged; then
    say "starting munged"
    runuser -u munge -- munged --socket="$DIR/munge/munge.socket" \
      --key-file="$DIR/munge/munge.key" --pid-file="$DIR/munge/munged.pid" \
      --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
    timeout 20 bash -c "until [ -s '$DIR/munge/munged.pid' ]; do sleep 0.2; done"
    cp "$DIR/munge/munged.pid" "$DIR/munged.pid"
  fi
  if ! running slurmctld; then
    say "starting slurmctld"
    setsid slurmctld -D -i -f "$CONF" >>"$DIR/log/slurmctld.out" 2>&1 < /dev/null &
    echo $! > "$DIR/slurmctld.pid"
  fi
  timeout 60 bash -c "until SLURM_CONF='$CONF' scontrol ping 2>/dev/null | grep -q UP; do sleep 0.5; done" \
    || { say "slurmctld did not answer; see $DIR/log/slurmctld.log"; exit 1; }
  if ! running slurmd; then
    say "starting slurmd"
    setsid slurmd -D -f "$CONF" >>"$DIR/log/slurmd.out" 2>&1 < /dev/null &
    echo $! > "$DIR/slurmd.pid"
  fi
  timeout 60 bash -c "until SLURM_CONF='$CONF' sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; do sleep 0.5; done" \
    || { say "the node did not come up; see $DIR/log/slurmd.log"; exit 1; }
  if ! running slurmrestd; then
    say "starting slurmrestd on 127.0.0.1:$REST_PORT"
    setsid runuser -u "$REST_USER" -- env SLURM_CONF="$CONF" SLURM_JWT=daemon \
      slurmrestd -a rest_auth/jwt -s openapi/v0.0.38 "127.0.0.1:$REST_PORT" \
      >>"$DIR/log/slurmrestd.log" 2>&1 < /dev/null &
    echo $! > "$DIR/slurmrestd.pid"
  fi
  # No token: slurmrestd answers 401, which proves it is up and checking tokens.
  if ! timeout 30 python3 - "http://127.0.0.1:$REST_PORT/slurm/v0.0.38/ping" <<'PY'
import sys, time, urllib.error, urllib.request
while True:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=5)
        break
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            break
    except OSError:
        pass
    time.sleep(0.5)
PY
  then say "slurmrestd did not answer; see $DIR/log/slurmrestd.log"; exit 1; fi
}

if [ "$ACTION" = stop ]; then stop_all; exit 0; fi
[ "$ACTION" = start ] || { echo "usage: bash .ci/slurm.sh DIR [stop]" >&2; exit 2; }
write_keys
write_conf
make_users
start_daemons
say "ready: cluster $CLUSTER, slurmrestd http://127.0.0.1:$REST_PORT"
echo "export DAAAS_TEST_SLURM_URL=http://127.0.0.1:$REST_PORT" \
     "DAAAS_TEST_SLURM_JWT_KEY=$DIR/jwt.key DAAAS_TEST_SLURM_CLUSTER=$CLUSTER" \
     "DAAAS_TEST_SLURM_PARTITION=debug DAAAS_TEST_SLURM_USERS='hpc-alice hpc-bob'" \
     "DAAAS_TEST_SLURM_CONF=$CONF"
