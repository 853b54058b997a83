#!/usr/bin/env bash
# The README's test command (and so CI's): installs what the tests need
# where it is missing, then runs the unit tests under the race detector and
# the end-to-end tests on a real local control plane (built from Go modules
# on first use; see the README).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use, installed where missing: the AWS CLI (v2)
# is a second client of the local AWS endpoint; bash-completion is what a
# user's bash completes noderoll's commands with; tmux gives `upgrade` and
# `watch` real terminals side by side; Chromium renders the HTML report.
need=()
[ -x /usr/bin/aws ] || need+=(awscli)
[ -f /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
command -v tmux >/dev/null || need+=(tmux)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "test/run.sh: installing Debian's ${need[*]} for the tests" >&2
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	else
		echo "test/run.sh: ${need[*]} missing and this is not root: run 'sudo apt-get update && sudo apt-get install -y ${need[*]}' first; the tests that use them fail without them" >&2
	fi
fi

# Unit tests, every package but the end-to-end one, with -race: the engine
# drains nodes concurrently.
mapfile -t units < <(go list ./... | grep -v '/test/e2e$')
go test -race -timeout 20m "${units[@]}"

# End to end, on the sandbox. Each test has a sandbox of its own and mostly
# waits on it: two at a time left the 2 cores half idle (1134 s), four
# saturated them (671 s); three keeps some headroom for a busy machine.
go test -parallel 3 -timeout 45m ./test/e2e/...
