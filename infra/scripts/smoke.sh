#!/usr/bin/env bash
# Smoke test of a deployed uploadsession API: it passes only if the app runs, reaches its storage
# and serves a whole upload session.
#
# usage: smoke.sh BASE_URL        BASE_URL is the API root with its version segment, as azd's
#                                 API_BASE_URL output: https://<app>.azurewebsites.net/beta
#                                 (without one, /beta is added for the API calls)
#
# 1. GET {root}/health (no token) must answer 200 {"status": "healthy"}: the functions are
#    indexed and the app's identity reaches its tables and blobs. A fresh deployment may answer
#    404, 5xx or 503 unhealthy while the host starts and its roles propagate; that is waited out.
# 2. Without a token, GET .../uploadSession must answer 401 with Graph's error envelope
#    (code InvalidAuthenticationToken) and a Bearer challenge.
# 3. With a token, a whole session: create (PUT), upload the first half (202), read it (GET),
#    upload the rest (201, document committed), download it (GET {D}/$value: 302 to a short-lived
#    URL whose bytes must be the uploaded ones), cancel (DELETE 204), then GET is 404.
#    The token is SMOKE_TOKEN, or one from the Azure CLI for SMOKE_SCOPE, by default the api://
#    audience of AUTH_AUDIENCES + /.default: in the pipeline that is the pipeline identity's own
#    application token (app-registration.bicep's clientServicePrincipalIds grants it
#    PrintJob.ReadWrite.All and Printer.Read.All; its tenant must be active).
#    No way to get a token fails the test, unless SMOKE_SKIP_SESSION=1 says to stop after step 2.
#
# env: SMOKE_WAIT_SECONDS (default 300) how long step 1 waits for the app to come up,
#      SMOKE_POLL_SECONDS (default 10) pause between its attempts.
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 BASE_URL   (e.g. https://<app>.azurewebsites.net/beta)" >&2
  exit 2
fi
base="${1%/}"
case "$base" in
*/beta | */v1.0) root="${base%/*}" ;;
*)
  root="$base"
  base="$base/beta"
  ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
body="$work/body"
headers="$work/headers"

log() { printf 'smoke: %s\n' "$*" >&2; }
fail() {
  log "FAIL: $*"
  if [[ -s "$body" ]]; then
    log "response body: $(head -c 2000 "$body")"
  fi
  exit 1
}

new_guid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

# request METHOD URL [curl options]: sets $status; the response lands in $body and $headers.
request() {
  local method=$1 url=$2
  shift 2
  : >"$body"
  : >"$headers"
  status="$(curl --silent --show-error --max-time 60 --request "$method" \
    --output "$body" --dump-header "$headers" --write-out '%{http_code}' "$@" "$url")" || status=000
}

# header NAME: the last value of a response header.
header() {
  { grep -i "^$1:" "$headers" || true; } | tail -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}

# json FIELD[.FIELD...]: a field of the JSON response body; strings bare, anything else as compact JSON.
json() {
  python3 - "$body" "$1" <<'PY'
import json
import sys

try:
    value = json.load(open(sys.argv[1], encoding="utf-8"))
except ValueError:
    print("<not JSON>")
    raise SystemExit(0)
for key in sys.argv[2].split("."):
    value = value.get(key) if isinstance(value, dict) else None
print(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))
PY
}

expect_status() {
  [[ "$status" == "$1" ]] || fail "$2: expected HTTP $1, got $status"
}

expect_json() {
  local actual
  actual="$(json "$1")"
  [[ "$actual" == "$2" ]] || fail "$3: expected $1 = $2, got $actual"
}

document="$base/print/printers/$(new_guid)/jobs/smoke/documents/$(new_guid)"
session="$document/uploadSession"

# ---- 1. Health: up, and storage answers. ----
deadline=$((SECONDS + ${SMOKE_WAIT_SECONDS:-300}))
while :; do
  request GET "$root/health"
  if [[ "$status" == 200 && "$(json status)" == healthy ]]; then
    break
  fi
  if ((SECONDS >= deadline)); then
    fail "GET $root/health: expected HTTP 200 {\"status\": \"healthy\"} within ${SMOKE_WAIT_SECONDS:-300}s, last got $status"
  fi
  log "GET /health answered $status; the app may still be starting, retrying"
  sleep "${SMOKE_POLL_SECONDS:-10}"
done
log "ok: GET /health answers 200 healthy"

# ---- 2. Unauthenticated: 401 with Graph's envelope. ----
request GET "$session"
expect_status 401 "GET without a token"
expect_json error.code InvalidAuthenticationToken "GET without a token"
[[ "$(header WWW-Authenticate)" == Bearer* ]] || fail "GET without a token: no Bearer challenge in WWW-Authenticate"
log "ok: unauthenticated GET answers 401 InvalidAuthenticationToken"

# ---- 3. A whole session with a real token. ----
if [[ "${SMOKE_SKIP_SESSION:-}" == 1 ]]; then
  log "SMOKE_SKIP_SESSION=1: skipped the authenticated round trip"
  exit 0
fi
# The scope: SMOKE_SCOPE, or the first api:// audience of AUTH_AUDIENCES (the first one at all
# when none is an api:// URI) + /.default.
default_scope() {
  local audience first=""
  local -a audiences
  IFS=',' read -r -a audiences <<<"${AUTH_AUDIENCES:-}"
  for audience in "${audiences[@]}"; do
    audience="${audience// /}"
    [[ -n "$audience" ]] || continue
    [[ -n "$first" ]] || first="$audience"
    if [[ "$audience" == api://* ]]; then
      printf '%s/.default\n' "$audience"
      return
    fi
  done
  [[ -z "$first" ]] || printf '%s/.default\n' "$first"
}
token="${SMOKE_TOKEN:-}"
scope="${SMOKE_SCOPE:-$(default_scope)}"
if [[ -z "$token" && -n "$scope" ]]; then
  token="$(az account get-access-token --scope "$scope" --query accessToken --output tsv)" ||
    fail "no token for $scope from the Azure CLI (az login as the identity holding the app roles)"
fi
if [[ -z "$token" ]]; then
  fail "no token: set SMOKE_TOKEN, SMOKE_SCOPE or AUTH_AUDIENCES (or SMOKE_SKIP_SESSION=1 to stop after the unauthenticated checks)"
fi
if [[ -n "${GITHUB_ACTIONS:-}" ]]; then
  echo "::add-mask::$token"
fi
# The token goes to curl in a file, never on a command line.
auth="$work/authorization"
(umask 077 && printf 'Authorization: Bearer %s\n' "$token" >"$auth")

printf '%s' 'uploadsession-sm' >"$work/part1"
printf '%s' 'oke-test-payload' >"$work/part2"

request PUT "$session" --header @"$auth" --header 'Content-Type: application/json' \
  --data '{"size": 32, "contentType": "application/octet-stream", "documentName": "smoke.bin"}'
expect_status 200 "create (PUT)"
expect_json size 32 "create (PUT)"
expect_json missingRanges '[{"start":"0","end":"31"}]' "create (PUT)"
session_id="$(json id)"
etag="$(header ETag)"
[[ -n "$etag" ]] || fail "create (PUT): no ETag header"
log "ok: created session $session_id"

request POST "$session/\$value" --header @"$auth" --header "If-Match: $etag" \
  --header 'Content-Type: application/octet-stream' --header 'Content-Range: bytes 0-15/32' \
  --data-binary @"$work/part1"
expect_status 202 "upload bytes 0-15 (POST \$value)"
expect_json missingRanges '[{"start":"16","end":"31"}]' "upload bytes 0-15 (POST \$value)"
log "ok: uploaded bytes 0-15"

request GET "$session" --header @"$auth"
expect_status 200 "read (GET)"
expect_json id "$session_id" "read (GET)"
expect_json nextExpectedRanges '[{"start":"16","end":"31"}]' "read (GET)"
etag="$(header ETag)"
log "ok: read the session back"

request POST "$session/\$value" --header @"$auth" --header "If-Match: $etag" \
  --header 'Content-Type: application/octet-stream' --header 'Content-Range: bytes 16-31/32' \
  --data-binary @"$work/part2"
expect_status 201 "upload bytes 16-31 (POST \$value)"
expect_json missingRanges '[]' "upload bytes 16-31 (POST \$value)"
log "ok: uploaded bytes 16-31; the document is complete"

request GET "$document/\$value" --header @"$auth"
expect_status 302 "download (GET {D}/\$value)"
location="$(header Location)"
[[ -n "$location" ]] || fail "download (GET {D}/\$value): no Location header"
# The Location is a short-lived read-only URL (its SAS is a credential): never print it.
if [[ -n "${GITHUB_ACTIONS:-}" ]]; then
  echo "::add-mask::$location"
fi
request GET "$location"
expect_status 200 "download (GET Location)"
cmp -s "$body" <(cat "$work/part1" "$work/part2") || fail "download: the bytes are not the uploaded ones"
log "ok: downloaded the committed document through its 302"

request DELETE "$session" --header @"$auth"
expect_status 204 "cancel (DELETE)"

request GET "$session" --header @"$auth"
expect_status 404 "read after DELETE"
expect_json error.code itemNotFound "read after DELETE"
log "ok: deleted; the round trip passed"
