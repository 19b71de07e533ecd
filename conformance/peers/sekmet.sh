#!/usr/bin/env bash
# fhir-conformance against another FHIR R4 server: sekmet-fhir 0.1.1 from PyPI (FastAPI + SQLite),
# installed in a throw-away venv (never into the project's), started on a free loopback port, stopped
# at the end. Its summary is in docs/CONFORMANCE.md. Not part of `make test`: `make conformance-sekmet`.
#
#   conformance/peers/sekmet.sh [REPORT_DIR] [-- more fhir-conformance options]
#
# Exits with fhir-conformance's status (0 only when no test failed).
set -euo pipefail

HERE="$(cd "$(dirname "$0")/../.." && pwd)"
REPORT_DIR="${1:-$HERE/.cache/conformance-sekmet}"
shift || true
[ "${1:-}" = "--" ] && shift
TOOL="${FHIR_CONFORMANCE:-$HERE/.venv/bin/fhir-conformance}"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
SERVER_PID=""

stop() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap stop EXIT

"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet "sekmet-fhir==0.1.1"
# sekmet builds its links (paging, Location) from base_url: it must name the port it listens on.
cd "$WORK"
SEKMET_BASE_URL="http://127.0.0.1:$PORT/fhir" SEKMET_PORT="$PORT" \
    "$WORK/venv/bin/sekmet" serve --host 127.0.0.1 --port "$PORT" > "$WORK/sekmet.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$PORT/fhir/metadata" > /dev/null 2>&1; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/sekmet.log" >&2; exit 2; fi
    sleep 0.5
done
# sekmet accepts requests without authentication: the tool runs without a token.
status=0
"$TOOL" --base-url "http://127.0.0.1:$PORT/fhir" --report "$REPORT_DIR" "$@" || status=$?
echo "reports in $REPORT_DIR (report.html, junit.xml, report.json)" >&2
exit "$status"
