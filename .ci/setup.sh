#!/usr/bin/env bash
# One-step set-up for a fresh Debian machine (run as root, or with sudo available).
#   bash .ci/setup.sh serve   install what the portal needs and start it on the embedded default
#   bash .ci/setup.sh test    install what the tests need, start PostgreSQL, run the whole suite
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
[ "$mode" = serve ] || [ "$mode" = test ] || { echo "usage: bash .ci/setup.sh serve|test" >&2; exit 2; }

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
# System packages: the local desktop provider (Xvnc, a window manager, a desktop with icons),
# the browser proxy (websockify, noVNC) and, for tests, PostgreSQL, Chromium and cloud-init.
RUN_PACKAGES="python3 python3-venv python3-pip tigervnc-standalone-server tigervnc-tools openbox
  xterm xauth pcmanfm websockify novnc xrdp xorgxrdp mousepad silx python3-h5py x11-utils"
TEST_PACKAGES="$RUN_PACKAGES postgresql chromium fonts-dejavu-core cloud-init slurm-wlm munge
  slurmrestd slurm-wlm-jwt-plugin rabbitmq-server curl tesseract-ocr
  qemu-system-x86 qemu-utils cloud-image-utils mmdebstrap e2fsprogs linux-image-cloud-amd64
  nodejs pamtester prometheus freerdp2-x11 nfs-ganesha nfs-ganesha-vfs libnfs-utils openssh-client"

install_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=900
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=900 "${missing[@]}"
}

make_venv() {
  [ -x .venv/bin/python ] || /usr/bin/python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -U pip
  .venv/bin/pip install -q --disable-pip-version-check -e "$1"
}

start_postgres() {
  local version; version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  [ -d "/etc/postgresql/$version/main" ] || $SUDO pg_createcluster "$version" main
  $SUDO pg_ctlcluster "$version" main status >/dev/null 2>&1 || $SUDO pg_ctlcluster "$version" main start
  timeout 60 bash -c "until pg_isready -q -h 127.0.0.1; do sleep 0.5; done"
  $SUDO runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'daaas_test') THEN
    CREATE ROLE daaas_test LOGIN CREATEDB PASSWORD 'daaas_test';
  END IF;
END $$;
-- DROP DATABASE ... WITH (FORCE) at a test's end must be able to end an autovacuum worker
-- that has just started in the test's database; that needs pg_signal_backend.
GRANT pg_signal_backend TO daaas_test;
SELECT 'CREATE DATABASE daaas_test OWNER daaas_test'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'daaas_test')\gexec
SQL
  export DAAAS_TEST_POSTGRES_URL="postgresql+psycopg://daaas_test:daaas_test@127.0.0.1:5432/daaas_test"
}

start_slurm() {   # a real single-node Slurm + slurmrestd (JWT) on 127.0.0.1 for the HPC tests
  local env
  env=$($SUDO bash .ci/slurm.sh /tmp/daaas-slurm)   # a plain assignment keeps set -e working
  eval "$(printf '%s\n' "$env" | grep '^export ')"
}

start_openstack() {   # real Keystone, Glance, Placement, Nova (fake GPU driver) on 127.0.0.1
  local env
  env=$($SUDO bash .ci/openstack.sh up)
  eval "$(printf '%s\n' "$env" | grep '^export ')"
}

if [ "$mode" = serve ]; then
  install_packages $RUN_PACKAGES
  make_venv .
  # Desktops run as each user's own account and must pass through every folder above var_dir
  # (o+x): a checkout under /root is closed to them, so the portal keeps its data elsewhere.
  if [ -z "${DAAAS_VAR_DIR:-}" ] && [ "$(id -u)" = 0 ] && ! runuser -u nobody -- test -x "$PWD"; then
    export DAAAS_VAR_DIR=/var/lib/daaas
    echo "$PWD is closed to other accounts: the portal keeps its data in $DAAAS_VAR_DIR"
  fi
  exec .venv/bin/daaas serve
fi

install_packages $TEST_PACKAGES
make_venv ".[test]"
# The OIDC tests' real OpenID provider (tests/support/oidc_op: oidc-provider, pinned by its lock
# file). Debian's nodejs has no npm; NodeSource's nodejs includes it (and conflicts with npm).
command -v npm >/dev/null || install_packages npm
npm ci --prefix tests/support/oidc_op --no-audit --no-fund
start_postgres
start_slurm
start_openstack
echo "== lint (ruff)";  .venv/bin/ruff check .
echo "== types (mypy)"; .venv/bin/mypy
echo "== tests (pytest)"
exec .venv/bin/pytest --durations=40 "${@:2}"
