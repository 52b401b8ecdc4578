#!/usr/bin/env bash
# make run: start Azurite (data under .azurite/), activate the dev tenant, print a dev token
# and curl lines, then serve the app on http://localhost:7071 (func start if Core Tools is
# installed, else `uploadsession serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/.venv/bin"
port="${PORT:-7071}"

export UPLOADSESSION_STORAGE="${UPLOADSESSION_STORAGE:-UseDevelopmentStorage=true}"
export AUTH_AUDIENCES="${AUTH_AUDIENCES:-api://uploadsession-dev}"
export AUTH_JWKS_URI="${AUTH_JWKS_URI:-file://$root/.local/jwks.json}"
export UPLOAD_SESSION_TTL_SECONDS="${UPLOAD_SESSION_TTL_SECONDS:-86400}"

port_open() { "$bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.3); sys.exit(s.connect_ex(('127.0.0.1', int(sys.argv[1]))))" "$1"; }

if port_open "$port"; then
  echo "Port $port is already in use (another 'make run'?). Stop it, or choose another port: PORT=7072 make run" >&2
  exit 1
fi

if port_open 10000 && port_open 10002; then
  echo "Azurite already running on 127.0.0.1:10000/10002; reusing it."
else
  mkdir -p .azurite
  node_modules/.bin/azurite --silent --disableTelemetry --skipApiVersionCheck \
    --location .azurite --debug .azurite/debug.log \
    --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 \
    > .azurite/azurite.log 2>&1 &
  azurite_pid=$!
  trap 'kill $azurite_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    port_open 10000 && port_open 10002 && break
    sleep 0.2
  done
  port_open 10002 || { echo "Azurite did not start; see .azurite/azurite.log" >&2; exit 1; }
  echo "Azurite started (pid $azurite_pid), data in .azurite/"
fi

tenant=$("$bin/python" -c 'from uploadsession.dev.tokens import DEV_TENANT; print(DEV_TENANT)')
"$bin/uploadsession" subscription activate "$tenant" >/dev/null
token=$("$bin/uploadsession" dev-token)
printer=$("$bin/python" -c 'import uuid; print(uuid.uuid4())')
document=$("$bin/python" -c 'import uuid; print(uuid.uuid4())')
base="http://localhost:$port/beta"
session="$base/print/printers/$printer/jobs/1/documents/$document/uploadSession"

cat <<MSG

Dev tenant $tenant is active. A dev token (12 h; more with: .venv/bin/uploadsession dev-token --help):

TOKEN=$token

Create a session, then read it (paste into another shell):

curl -sS -w ' -> %{http_code}\n' -X PUT -H "Authorization: Bearer \$TOKEN" -H "Content-Type: application/json" \\
  -d '{"size": 11, "contentType": "text/plain", "documentName": "hello.txt"}' \\
  "$session"
curl -sS -i -H "Authorization: Bearer \$TOKEN" "$session"

Upload the 11 bytes in two segments (the second answers 201):

printf 'hello ' | curl -sS -w ' -> %{http_code}\n' -X POST -H "Authorization: Bearer \$TOKEN" -H "If-Match: *" \\
  -H "Content-Type: application/octet-stream" -H "Content-Range: bytes 0-5/11" \\
  --data-binary @- "$session/\\\$value"
printf 'world' | curl -sS -w ' -> %{http_code}\n' -X POST -H "Authorization: Bearer \$TOKEN" -H "If-Match: *" \\
  -H "Content-Type: application/octet-stream" -H "Content-Range: bytes 6-10/11" \\
  --data-binary @- "$session/\\\$value"

MSG

if command -v func >/dev/null 2>&1; then
  "$bin/python" - <<PY
import json, os
settings = json.load(open("local.settings.json.example"))
values = settings["Values"]
for name in ("UPLOADSESSION_STORAGE", "AUTH_AUDIENCES", "AUTH_JWKS_URI", "UPLOAD_SESSION_TTL_SECONDS"):
    values[name] = os.environ[name]
json.dump(settings, open("local.settings.json", "w"), indent=2)
PY
  echo "Starting the app with Azure Functions Core Tools (func start) on port $port"
  # shellcheck disable=SC1091
  source .venv/bin/activate
  func start --port "$port"
else
  echo "Starting the app with 'uploadsession serve' on port $port (Core Tools not installed)"
  "$bin/uploadsession" serve --host 127.0.0.1 --port "$port"
fi
