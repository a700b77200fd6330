#!/usr/bin/env bash
# Start the whole suite on this machine: migrate every database, declare the bus topology,
# then run every API, worker and relay under honcho (Procfile). Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVICES=(identity catalog enrollment automation reporting)
export LMS_VAR_DIR="${LMS_VAR_DIR:-$PWD/var}"
export LMS_AMQP_URL="${LMS_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}"
mkdir -p "$LMS_VAR_DIR"

if ! python -c "import lms_common, honcho" 2>/dev/null; then
    echo "The suite is not installed in this Python ($(command -v python)): run 'make run'." >&2
    exit 1
fi

if ! python - <<'PY'
import os, sys, pika
try:
    pika.BlockingConnection(pika.URLParameters(os.environ["LMS_AMQP_URL"])).close()
except Exception as exc:
    print(f"RabbitMQ does not answer at {os.environ['LMS_AMQP_URL']}: {exc!r}", file=sys.stderr)
    sys.exit(1)
PY
then
    cat >&2 <<'TXT'
Start RabbitMQ first, for example:
    rabbitmq-server -detached            (a local install)
    docker compose up -d rabbitmq        (with Docker)
or point LMS_AMQP_URL at a running broker.
TXT
    exit 1
fi

for service in "${SERVICES[@]}"; do
    echo "== migrating $service"
    python -m "$service" migrate
    python -m "$service" topology
done

cat <<TXT

The LMS suite is starting:
  identity    http://127.0.0.1:8001/docs
  catalog     http://127.0.0.1:8002/docs
  enrollment  http://127.0.0.1:8003/docs
  automation  http://127.0.0.1:8004/docs
  reporting   http://127.0.0.1:8005/docs
  metrics     /metrics on each API; workers on port API+100, relays on API+200
  databases   ${LMS_VAR_DIR}/*.sqlite3 unless LMS_<SERVICE>_DATABASE_URL is set
  bootstrap   the super admin and OAuth client credentials are in ${LMS_VAR_DIR}/bootstrap.json
Ctrl-C stops everything.

TXT
exec honcho start -f Procfile
