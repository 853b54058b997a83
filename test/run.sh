#!/usr/bin/env bash
# The README's test command (and so CI's): installs what the tests need
# where it is missing, then runs the unit tests under the race detector and
# the end-to-end tests on a real local control plane (built from Go modules
# on first use; see the README).
set -euo pipefail
cd "$(dirname "$0")/.."

# The AWS CLI (Debian's v2) is a second client of the local AWS endpoint.
if [ ! -x /usr/bin/aws ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "test/run.sh: installing Debian's awscli for the endpoint's CLI tests" >&2
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli >/dev/null
	else
		echo "test/run.sh: /usr/bin/aws is missing and this is not root: run 'sudo apt-get update && sudo apt-get install -y awscli' first; TestTheAWSCLIUsesTheEndpointAsAWS fails without it" >&2
	fi
fi

# Unit tests, every package but the end-to-end one, with -race: the engine
# drains nodes concurrently.
mapfile -t units < <(go list ./... | grep -v '/test/e2e$')
go test -race -timeout 20m "${units[@]}"

# End to end, on the sandbox.
go test -timeout 45m ./test/e2e/...
