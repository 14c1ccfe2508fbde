#!/bin/bash
# Real Keystone, Glance, Placement and Nova (fake GPU virt driver) on 127.0.0.1, from PyPI.
#
#   .ci/openstack.sh        bring up (idempotent: keeps data and a running service), print exports
#   .ci/openstack.sh down   stop everything this script started (by recorded process group)
#   .ci/openstack.sh fresh  down, wipe the data, bring up again
#
# Run as root on Debian 12. Everything lives under $DAAAS_OPENSTACK_DIR (default var/openstack):
# a Python venv with the services pinned by tests/openstack/upper-constraints-2026.1.txt, the
# rendered configs, SQLite databases, logs, pid files and clouds.yaml. All waits are bounded.
set -euo pipefail

APT_PACKAGES="rabbitmq-server postgresql python3-venv curl"

REPO=$(cd "$(dirname "$0")/.." && pwd)
T=$REPO/tests/openstack
BASE=${DAAAS_OPENSTACK_DIR:-$REPO/var/openstack}
VENV=$BASE/venv
find_python() {  # the first interpreter that really runs (a pyenv shim may exist but refuse)
  local candidate
  for candidate in "${DAAAS_OPENSTACK_PYTHON:-}" "$(command -v python3.12 || true)" \
      "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 /usr/bin/python3.12 \
      "$(command -v python3.11 || true)" /usr/bin/python3; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import venv' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "no usable Python for the OpenStack services" >&2; return 1
}
PY=$(find_python)
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
T0=$(date +%s)
say() { echo "[openstack +$(( $(date +%s) - T0 ))s] $*" >&2; }

rabbit_env() {
  export HOME=$BASE/data/rabbitmq RABBITMQ_NODENAME=rabbit@localhost
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=5672 RABBITMQ_DIST_PORT=25672
  export ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_CONFIG_FILE=$BASE/etc/rabbitmq/rabbitmq.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$BASE/etc/rabbitmq/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$BASE/data/rabbitmq/mnesia RABBITMQ_LOG_BASE=$BASE/log/rabbitmq
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

alive() { [ -s "$BASE/run/$1.pid" ] && kill -0 "$(cat "$BASE/run/$1.pid")" 2>/dev/null; }

stop_all() {  # stop services by their recorded process groups (setsid made each a leader)
  local pids=""
  for name in "$@"; do
    local f=$BASE/run/$name.pid
    [ -s "$f" ] || continue
    local pid; pid=$(cat "$f")
    kill -- "-$pid" 2>/dev/null && { say "stopping $name (process group $pid)"; pids="$pids $pid"; }
    rm -f "$f"
  done
  [ -n "$pids" ] || return 0
  local deadline=$(( $(date +%s) + 15 ))  # SIGTERM first, bounded; then SIGKILL the group
  for pid in $pids; do
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    kill -9 -- "-$pid" 2>/dev/null || true
  done
}

down() {
  stop_all nova-compute nova-scheduler nova-conductor nova-api neutron-stub glance placement keystone
  if [ -s "$BASE/run/rabbitmq.pid" ]; then
    (rabbit_env; timeout 60 /usr/lib/rabbitmq/bin/rabbitmqctl -q stop >/dev/null 2>&1) || true
    stop_all rabbitmq
    [ -s "$BASE/run/epmd.pid" ] && kill "$(cat "$BASE/run/epmd.pid")" 2>/dev/null || true
    rm -f "$BASE/run/epmd.pid"
  fi
}

wait_http() {  # wait_http NAME URL: bounded wait until the URL answers at all
  if ! timeout 120 bash -c "until curl -s -o /dev/null -m 2 '$2'; do sleep 0.25; done"; then
    say "$1 did not come up; last log lines:"; tail -20 "$BASE/log/$1.log" >&2; return 1
  fi
  say "$1 up on $2"
}

show_logs() {  # show_logs NAME...: the last lines of each service's log, for a failed bring-up
  for name in "$@"; do
    say "last lines of $BASE/log/$name.log:"; tail -25 "$BASE/log/$name.log" >&2 || true
  done
}

start_wsgi() {  # start_wsgi NAME PORT MODULE:APP ENV=VALUE...
  local name=$1 port=$2 app=$3; shift 3
  alive "$name" && return 0
  env PYTHONPATH="$T/wsgi" "$@" setsid "$VENV/bin/gunicorn" --no-control-socket \
    --bind "127.0.0.1:$port" --workers 1 --threads "${THREADS:-4}" --worker-class gthread \
    --timeout 120 --pid "$BASE/run/$name.pid" --access-logfile "$BASE/log/$name-access.log" \
    --error-logfile - "$app" >> "$BASE/log/$name.log" 2>&1 < /dev/null &
  echo $! > "$BASE/run/$name.pid"
  wait_http "$name" "http://127.0.0.1:$port/"
}

start_daemon() {  # start_daemon NAME CMD...
  local name=$1; shift
  alive "$name" && return 0
  setsid "$@" >> "$BASE/log/$name.log" 2>&1 < /dev/null &
  echo $! > "$BASE/run/$name.pid"
  say "$name started (pid $!)"
}

install() {
  local missing=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    say "apt-get install$missing"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
  fi
  if [ ! -x "$VENV/bin/nova-manage" ]; then
    say "installing the services into $VENV with $PY"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q -U pip wheel setuptools
    "$VENV/bin/pip" install -q -c "$T/upper-constraints-2026.1.txt" \
      "keystone>=29,<30" "glance>=32,<33" "openstack-placement>=15,<16" "nova>=33,<34" \
      openstacksdk gunicorn psycopg2-binary
  fi
  local site; site=$("$VENV/bin/python" -c 'import nova.virt, os; print(os.path.dirname(nova.virt.__file__))')
  cp "$T/pylib/mini_fake.py" "$site/"   # nova loads compute_driver only as nova.virt.<name>
}

render_configs() {
  mkdir -p "$BASE"/{etc,log/rabbitmq,run} "$BASE"/data/{glance/images,glance/staging,glance/tasks,nova/instances,locks,rabbitmq,keystone}
  for d in keystone glance placement nova rabbitmq; do
    mkdir -p "$BASE/etc/$d"
    for f in "$T/etc/$d"/*; do sed "s#@BASE@#$BASE#g" "$f" > "$BASE/etc/$d/$(basename "$f")"; done
  done
  cp "$VENV/etc/nova/api-paste.ini" "$BASE/etc/nova/api-paste.ini"
  cp "$VENV/etc/glance/glance-api-paste.ini" "$BASE/etc/glance/glance-api-paste.ini"
}

start_rabbitmq() {
  alive rabbitmq && return 0
  (
    rabbit_env
    setsid /usr/lib/rabbitmq/bin/rabbitmq-server >> "$BASE/log/rabbitmq.log" 2>&1 < /dev/null &
    echo $! > "$BASE/run/rabbitmq.pid"
    timeout 120 bash -c 'until /usr/lib/rabbitmq/bin/rabbitmqctl -q await_startup >/dev/null 2>&1; do sleep 1; done'
  )
  ss -ltnpH "sport = :4369" | grep -o "pid=[0-9]*" | head -1 | cut -d= -f2 > "$BASE/run/epmd.pid" || true
  say "rabbitmq up"
}

NOVA_DB=postgresql+psycopg2://nova:nova-test-pw@127.0.0.1
nova_databases() {  # nova_databases create|drop: the role and databases in the local PostgreSQL
  command -v pg_lsclusters >/dev/null && pg_lsclusters -h | awk '$4 != "online" {print $1, $2}' |
    while read -r v c; do pg_ctlcluster "$v" "$c" start; done
  local psql="su postgres -c"
  for db in daaas_nova_api daaas_nova daaas_nova_cell0 daaas_placement daaas_keystone daaas_glance; do
    $psql "psql -qc 'DROP DATABASE IF EXISTS $db WITH (FORCE)'" >/dev/null 2>&1
    [ "$1" = create ] && $psql "psql -qc 'CREATE DATABASE $db'" >/dev/null
  done
  if [ "$1" = create ]; then
    $psql "psql -qc \"DROP ROLE IF EXISTS nova\"" >/dev/null 2>&1 || true
    $psql "psql -qc \"CREATE ROLE nova LOGIN PASSWORD 'nova-test-pw'\"" >/dev/null 2>&1 || true
    for db in daaas_nova_api daaas_nova daaas_nova_cell0 daaas_placement daaas_keystone daaas_glance; do
      $psql "psql -qc 'ALTER DATABASE $db OWNER TO nova'" >/dev/null
    done
  fi
}

setup_databases() {  # every service on PostgreSQL: on SQLite, concurrent requests (tokens
  # issued to four services at once, Placement claims and deletes) fail with "database is
  # locked" even in WAL mode with a busy timeout, and services die or servers end in ERROR
  [ -f "$BASE/data/.synced" ] && return 0
  local P=$VENV/bin
  nova_databases create
  local C="--config-file $BASE/etc/keystone/keystone.conf"
  $P/keystone-manage $C db_sync
  $P/keystone-manage $C fernet_setup --keystone-user root --keystone-group root
  $P/keystone-manage $C fernet_setup_receipts --keystone-user root --keystone-group root 2>/dev/null || true
  $P/keystone-manage $C credential_setup --keystone-user root --keystone-group root
  $P/keystone-manage $C bootstrap --bootstrap-password secret --bootstrap-username admin \
    --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-admin-url http://127.0.0.1:5000/v3/ --bootstrap-internal-url http://127.0.0.1:5000/v3/ \
    --bootstrap-public-url http://127.0.0.1:5000/v3/ --bootstrap-region-id RegionOne
  $P/placement-manage --config-file "$BASE/etc/placement/placement.conf" db sync
  $P/glance-manage --config-file "$BASE/etc/glance/glance-api.conf" db_sync
  local NM="$P/nova-manage --config-file $BASE/etc/nova/nova.conf"
  $NM api_db sync
  $NM cell_v2 map_cell0 --database_connection "$NOVA_DB/daaas_nova_cell0"
  $NM cell_v2 create_cell --name cell1 || true
  $NM db sync
  touch "$BASE/data/.synced"
}

stop_strays() {  # stop what another checkout's run of this script left behind (same ports, queues)
  local pids pid group groups=""
  pids=$(pgrep -f "venv/bin/nova-(api|compute|conductor|scheduler) --config-file" || true)
  for port in 5000 8778 9292 8774 9696 5672 25672; do
    pids="$pids $(ss -ltnpH "sport = :$port" | grep -o "pid=[0-9]*" | cut -d= -f2 || true)"
  done
  for pid in $pids; do
    group=$(ps -o pgid= "$pid" 2>/dev/null | tr -d ' ') || continue
    [ -n "$group" ] || continue
    grep -qsx "$group" "$BASE"/run/*.pid && continue  # ours: kept (this script is idempotent)
    case " $groups " in *" $group "*) continue ;; esac
    say "stopping a leftover service: $(ps -o args= "$pid" | cut -c1-100)"
    kill -- "-$group" 2>/dev/null || true
    groups="$groups $group"
  done
  local deadline=$(( $(date +%s) + 15 ))  # SIGTERM first, bounded; then SIGKILL the group
  for group in $groups; do
    while kill -0 -- "-$group" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    kill -9 -- "-$group" 2>/dev/null || true
  done
}

start_nova_daemons() {  # start whichever of conductor, scheduler, compute is not running
  local C="--config-file $BASE/etc/nova/nova.conf"
  start_daemon nova-conductor "$VENV/bin/nova-conductor" $C
  start_daemon nova-scheduler "$VENV/bin/nova-scheduler" $C
  start_daemon nova-compute "$VENV/bin/nova-compute" $C
}

up() {
  install; say "installed"
  stop_strays
  render_configs
  start_rabbitmq
  setup_databases > "$BASE/log/setup.log" 2>&1 || { tail -30 "$BASE/log/setup.log" >&2; exit 1; }
  say "databases ready"
  start_wsgi keystone 5000 keystone_wsgi:application OS_KEYSTONE_CONFIG_DIR="$BASE/etc/keystone"
  local B="$VENV/bin/python $T/bootstrap.py --base $BASE"
  timeout 120 $B catalog
  start_wsgi placement 8778 placement_wsgi:application OS_PLACEMENT_CONFIG_DIR="$BASE/etc/placement"
  start_wsgi glance 9292 glance_api_wsgi:application OS_GLANCE_CONFIG_DIR="$BASE/etc/glance"
  start_daemon neutron-stub "$VENV/bin/python" "$T/pylib/neutron_stub.py"
  start_wsgi nova-api 8774 nova_api_wsgi:application OS_NOVA_CONFIG_DIR="$BASE/etc/nova"
  local C="--config-file $BASE/etc/nova/nova.conf"
  start_nova_daemons
  if ! timeout 150 $B wait-compute; then  # a daemon that died at start (e.g. Keystone busy)
    say "Nova's services are not all up; starting the ones that died again"
    show_logs nova-conductor nova-scheduler nova-compute
    start_nova_daemons
    timeout 150 $B wait-compute || { show_logs nova-api nova-conductor nova-scheduler nova-compute; exit 1; }
  fi
  "$VENV/bin/nova-manage" $C cell_v2 discover_hosts >> "$BASE/log/setup.log" 2>&1
  timeout 300 $B resources || { show_logs nova-api nova-compute placement glance; exit 1; }
  say "OpenStack ready in $(( $(date +%s) - T0 )) s"
  echo "export DAAAS_TEST_OPENSTACK_CLOUD=daaas OS_CLIENT_CONFIG_FILE=$BASE/clouds.yaml"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  fresh) down; nova_databases drop; rm -rf "$BASE/data" "$BASE/etc" "$BASE/clouds.yaml"; up ;;
  *) echo "usage: $0 [up|down|fresh]" >&2; exit 2 ;;
esac
