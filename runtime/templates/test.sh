#!/usr/bin/env sh
# Calls the class on a running `duro dev` (or `duro serve --config duro.jsonc`) and checks its
# answers: sh test.sh [http://127.0.0.1:8787]
set -eu
url="${1:-http://127.0.0.1:8787}/objects/{class}/test-$$"
check() { [ "$2" = "$3" ] || { echo "FAIL $1: got $2, want $3" >&2; exit 1; }; }
check "first increment" "$(curl -fsS -X POST "$url/increment")" '{"count":1}'
check "second increment" "$(curl -fsS -X POST "$url/increment")" '{"count":2}'
check "get" "$(curl -fsS "$url/get")" '{"count":2}'
echo "ok"
