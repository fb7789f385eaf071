#!/usr/bin/env bash
# Start the MLflow tracking server for a team: UI, REST API, model registry and artifact proxy.
#
#   bash mlflow/server.sh                       # SQLite in mlflow/mlflow.db, http://127.0.0.1:5000
#   GEN_KERAS_MLFLOW_BACKEND=postgresql://mlflow:SECRET@db.internal/mlflow \
#   MLFLOW_AUTH_ADMIN_PASSWORD=... bash mlflow/server.sh --app-name basic-auth \
#        --artifacts-destination s3://team-bucket/mlflow --host 0.0.0.0 --allowed-hosts mlflow.internal
#
# A server reachable from other machines must require a login (--app-name basic-auth): without
# it anyone who reaches the port can register a model version and move the `champion` alias that
# retrain publishes. The script refuses to start that way unless you pass --insecure (a trusted,
# firewalled network only). Which addresses the server would listen on is decided by reading the
# final command line with mlflow's own parser and then the web server's (mlflow/bind_check.py:
# the last --host, --host=X, -hX, MLFLOW_HOST, --uvicorn-opts/--gunicorn-opts/--waitress-opts and
# their environment variables), and every host name is resolved: all its addresses must be
# loopback. What cannot be known before the start (a socket passed by file descriptor, a gunicorn
# configuration file, a name that does not resolve) counts as reachable. A database password belongs in
# GEN_KERAS_MLFLOW_BACKEND (the environment), not on the command line, where `ps` shows it; the
# script hands the URI to mlflow through the environment and prints it with the password masked.
#
# Options (each also from the environment variable in brackets):
#   --backend-store-uri URI      runs, metrics, registry  [GEN_KERAS_MLFLOW_BACKEND]
#                                (default sqlite:///<this folder>/mlflow.db; PostgreSQL:
#                                postgresql://user@host:5432/db, needs the psycopg2 package)
#   --artifacts-destination URI  where artifacts are stored; clients upload through the server
#                                [GEN_KERAS_MLFLOW_ARTIFACTS] (default <this folder>/artifacts)
#   --host HOST                  [GEN_KERAS_MLFLOW_HOST] default 127.0.0.1 (this machine only)
#   --port PORT                  [GEN_KERAS_MLFLOW_PORT] default 5000
#   --workers N                  default 2
#   --insecure                   allow a non-loopback --host without --app-name basic-auth
#   --app-name basic-auth        require a login; the admin password is read from
#                                MLFLOW_AUTH_ADMIN_PASSWORD (never a default one), the admin user
#                                name from MLFLOW_AUTH_ADMIN_USERNAME (default admin), and users are
#                                kept in <this folder>/basic_auth.db [GEN_KERAS_MLFLOW_AUTH_DB];
#                                needs mlflow[auth] (Flask-WTF); MLFLOW_FLASK_SERVER_SECRET_KEY (the
#                                CSRF key) is generated per start unless you set it. A checked
#                                login is cached per worker for GEN_KERAS_MLFLOW_AUTH_CACHE_TTL
#                                seconds (default 60; 0 = verify the password hash on every request)
#   anything else is passed to `mlflow server` unchanged (e.g. --allowed-hosts).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
backend="${GEN_KERAS_MLFLOW_BACKEND:-sqlite:///$here/mlflow.db}"
artifacts="${GEN_KERAS_MLFLOW_ARTIFACTS:-$here/artifacts}"
host="${GEN_KERAS_MLFLOW_HOST:-127.0.0.1}"
port="${GEN_KERAS_MLFLOW_PORT:-5000}"
workers=2
app=""
insecure=0
extra=()

die() { echo "mlflow/server.sh: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --backend-store-uri) need "$@"; backend="$2"; shift 2 ;;
    --backend-store-uri=*) backend="${1#*=}"; shift ;;
    --artifacts-destination) need "$@"; artifacts="$2"; shift 2 ;;
    --artifacts-destination=*) artifacts="${1#*=}"; shift ;;
    --host|-h) need "$@"; host="$2"; shift 2 ;;
    --host=*) host="${1#*=}"; shift ;;
    -h?*) host="${1#-h}"; shift ;;
    --port|-p) need "$@"; port="$2"; shift 2 ;;
    --port=*) port="${1#*=}"; shift ;;
    -p?*) port="${1#-p}"; shift ;;
    --workers|-w) need "$@"; workers="$2"; shift 2 ;;
    --workers=*) workers="${1#*=}"; shift ;;
    -w?*) workers="${1#-w}"; shift ;;
    --app-name) need "$@"; app="$2"; shift 2 ;;
    --app-name=*) app="${1#*=}"; shift ;;
    --insecure) insecure=1; shift ;;
    --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d'; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done

case "$backend" in
  sqlite:///*|postgresql://*|postgresql+*://*|mysql://*|mysql+*://*) ;;
  *) die "--backend-store-uri '$backend' is not a database URI (sqlite:///path or postgresql://...)" ;;
esac
[[ "$port" =~ ^[0-9]+$ ]] || die "--port '$port' is not a number"

if [ -n "$app" ]; then
  [ "$app" = "basic-auth" ] || die "--app-name '$app' is unknown; the only choice is basic-auth"
  # Refuse to start without an explicit admin password: never a default or an empty one.
  if [ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]; then
    die "--app-name basic-auth needs the admin password in MLFLOW_AUTH_ADMIN_PASSWORD (not set or empty); refusing to start"
  fi
  if [ "${MLFLOW_AUTH_ADMIN_PASSWORD}" = "password1234" ] || [ "${#MLFLOW_AUTH_ADMIN_PASSWORD}" -lt 12 ]; then
    die "MLFLOW_AUTH_ADMIN_PASSWORD is a known default or shorter than 12 characters; refusing to start"
  fi
fi

mlflow_bin="$(command -v mlflow || true)"
[ -n "$mlflow_bin" ] || mlflow_bin="$(dirname "$(command -v python3)")/mlflow"
[ -x "$mlflow_bin" ] || die "the mlflow command is not on PATH; activate the project's virtualenv"
python_bin="$(dirname "$mlflow_bin")/python"
[ -x "$python_bin" ] || python_bin="$(command -v python3)"

# The exact command line mlflow gets; where it would listen is read from it by mlflow's own parser.
args=(--artifacts-destination "$artifacts" --serve-artifacts --host "$host" --port "$port"
      --workers "$workers" ${app:+--app-name "$app"} ${extra[@]+"${extra[@]}"})
flags=()
[ "$insecure" != 1 ] || flags=(--insecure)
verdict=0
listening="$(MLFLOW_BACKEND_STORE_URI="$backend" "$python_bin" "$here/bind_check.py" \
  ${flags[@]+"${flags[@]}"} -- "${args[@]}")" || verdict=$?
case "$verdict" in
  0) ;;
  3) die "$listening; add --app-name basic-auth (with MLFLOW_AUTH_ADMIN_PASSWORD), or --insecure on a trusted network; refusing to start" ;;
  *) die "${listening:-cannot tell where the server would listen (mlflow/bind_check.py failed)}; refusing to start" ;;
esac

if [ -n "$app" ]; then
  export MLFLOW_AUTH_ADMIN_USERNAME="${MLFLOW_AUTH_ADMIN_USERNAME:-admin}"
  # The login forms' CSRF key. Several servers behind one address must share it: set it yourself;
  # otherwise a random one per start is fine (open forms just need a reload after a restart).
  if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
    MLFLOW_FLASK_SERVER_SECRET_KEY="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    export MLFLOW_FLASK_SERVER_SECRET_KEY
  fi
  # The auth settings file holds no secret: the password stays in the environment.
  auth_db="${GEN_KERAS_MLFLOW_AUTH_DB:-sqlite:///$here/basic_auth.db}"
  auth_ini="$(mktemp "${TMPDIR:-/tmp}/gen-keras-basic-auth.XXXXXX")"
  cat > "$auth_ini" <<EOF
[mlflow]
default_permission = READ
database_uri = $auth_db
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = ${GEN_KERAS_MLFLOW_AUTH_CACHE_TTL:-60}
EOF
  export MLFLOW_AUTH_CONFIG_PATH="$auth_ini"
fi

case "$artifacts" in
  *://*) ;;
  *) mkdir -p "$artifacts" ;;
esac
case "$backend" in
  sqlite:///*) mkdir -p "$(dirname "${backend#sqlite:///}")" ;;
esac

# The store URI may hold a database password: mask it when printed, pass it in the environment.
masked="$(printf '%s' "$backend" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#')"
echo "MLflow tracking server: http://$host:$port  (backend $masked, artifacts $artifacts${app:+, $app}; listening: $listening)" >&2
echo "Point training and serving at it: export MLFLOW_TRACKING_URI=http://$host:$port" >&2
export MLFLOW_BACKEND_STORE_URI="$backend"
# MLflow 3's background job runners (huey consumers, for its GenAI features) are not used by
# gen-keras: off unless set (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true turns them back on).
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
exec "$mlflow_bin" server "${args[@]}"
