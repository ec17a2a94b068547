#!/usr/bin/env bash
# Fuzzes Parley's HTTP API from its own OpenAPI document with Schemathesis.
#
# What it does:
#   1. creates a Python virtual environment in target/fuzz-venv (once) and installs
#      Schemathesis from PyPI into it;
#   2. builds `parley` and starts `parley serve` on a free loopback port, with a scratch SQLite
#      database, a generated admin token (PARLEY_ADMIN_TOKEN) and rate limiting off;
#   3. runs `schemathesis run http://127.0.0.1:<port>/api/v1/openapi.json` as that admin with
#      two checks: no response is a server error (`not_a_server_error`), and every response
#      matches the schema the document declares for it (`response_schema_conformance`); a hook
#      gives every request a fresh valid `Idempotency-Key` (see below);
#   4. stops the server and deletes the scratch database.
#
# Usage: scripts/fuzz-api.sh [extra schemathesis options...]
#   e.g. scripts/fuzz-api.sh --max-examples 200 --include-path-regex '^/api/v1/tickets'
#
# Environment:
#   FUZZ_MAX_EXAMPLES  test cases per operation (default 50)
#   FUZZ_WORKERS       concurrent Schemathesis workers (default 2)
#   PARLEY_BIN         a `parley` binary to fuzz instead of building one
#   PARLEY_LOG         the server's log filter (default warn)
#
# Exit status: Schemathesis's (0 when no check failed). Reports (JUnit and NDJSON, with every
# failing request) go to target/fuzz-report; the server's log is printed on failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="$root/target/fuzz-venv"
report_dir="$root/target/fuzz-report"

if [[ ! -x "$venv/bin/schemathesis" ]]; then
    echo "fuzz-api: installing schemathesis into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet schemathesis
fi

if [[ -z "${PARLEY_BIN:-}" ]]; then
    cargo build --quiet -p parley-api --bin parley
    PARLEY_BIN="$root/target/debug/parley"
fi

scratch="$(mktemp -d)"
server_pid=""
stop() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap stop EXIT

port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="$("$venv/bin/python" -c 'import secrets; print("parley_" + secrets.token_hex(32))')"
base="http://127.0.0.1:$port"

PARLEY_BIND="127.0.0.1:$port" \
PARLEY_DATABASE_URL="sqlite://$scratch/parley.db" \
PARLEY_ADMIN_TOKEN="$token" \
PARLEY_RATE_LIMIT=0 \
PARLEY_LOG="${PARLEY_LOG:-warn}" \
    "$PARLEY_BIN" serve >"$scratch/server.log" 2>&1 &
server_pid=$!

# Ready once it answers /health (the admin token is issued before it serves).
for _ in $(seq 1 120); do
    if curl --silent --fail --output /dev/null "$base/health"; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "fuzz-api: the server exited:" >&2
        cat "$scratch/server.log" >&2
        exit 1
    fi
    sleep 0.5
done
curl --silent --fail --output /dev/null "$base/health" || {
    echo "fuzz-api: the server did not answer /health within a minute" >&2
    exit 1
}

# Generated Idempotency-Key values repeat with different bodies, which the API rightly refuses
# (422): a fresh key per request keeps the fuzz on the handlers behind the middleware. Keys
# the server must refuse (negative cases) are sent as generated.
cat >"$scratch/hooks.py" <<'PY'
import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    for name, value in list((case.headers or {}).items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.fullmatch(value):
            case.headers[name] = str(uuid.uuid4())
PY

mkdir -p "$report_dir"
status=0
SCHEMATHESIS_HOOKS="$scratch/hooks.py" \
"$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --header "Authorization: Bearer $token" \
    --max-examples "${FUZZ_MAX_EXAMPLES:-50}" \
    --workers "${FUZZ_WORKERS:-2}" \
    --request-timeout 30 \
    --report junit,ndjson \
    --report-dir "$report_dir" \
    "$@" || status=$?

if [[ $status -ne 0 ]]; then
    echo "fuzz-api: failures found; the server's warnings and errors:" >&2
    tail -n 200 "$scratch/server.log" >&2
fi
exit "$status"
