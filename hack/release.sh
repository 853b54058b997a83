#!/usr/bin/env bash
# Builds the release archives of kubectl-noderoll (the binary under the
# name kubectl runs a plugin by) for Linux and macOS on amd64 and arm64
# into dist/, and writes the krew manifest plugins/noderoll.yaml with
# their addresses on the GitHub release and their sha256 sums.
#   hack/release.sh v0.1.0
# The builds are reproducible (-trimpath, no cgo, fixed archive times), so
# the same commit and Go version give the same sums. The commit must carry
# the tag and the tree be clean: Go stamps the tag, the commit and its time
# into the binary, and `noderoll version` reports them (a build without
# them says "(devel)").
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: hack/release.sh vX.Y.Z}
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version $version: want vX.Y.Z" >&2; exit 2; }
tagged=$(git describe --exact-match --tags HEAD 2>/dev/null || true)
[[ $tagged == "$version" ]] || { echo "HEAD is tagged '${tagged:-nothing}', not $version: git tag $version first" >&2; exit 2; }
[[ -z $(git status --porcelain) ]] || { echo "the work tree has changes: a release is built from the tagged commit alone" >&2; exit 2; }
repo=https://github.com/noderoll/noderoll
rm -rf dist && mkdir -p dist
platforms=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64)
declare -A sums
for p in "${platforms[@]}"; do
	os=${p%/*} arch=${p#*/}
	work=dist/$os-$arch
	mkdir -p "$work"
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=true \
		-ldflags "-s -w" -o "$work/kubectl-noderoll" ./cmd/noderoll
	cp README.md "$work/"
	tar --sort=name --mtime=2026-01-01T00:00:00Z --owner=0 --group=0 --numeric-owner \
		-C "$work" -cf - kubectl-noderoll README.md | gzip -n > "dist/kubectl-noderoll_${version}_${os}_${arch}.tar.gz"
	sums[$p]=$(sha256sum "dist/kubectl-noderoll_${version}_${os}_${arch}.tar.gz" | cut -d' ' -f1)
done
# The binary says the version it was released as.
host=dist/$(go env GOOS)-$(go env GOARCH)/kubectl-noderoll
if [[ -x $host ]]; then
	said=$("$host" version -o json | sed -n 's/.*"version": "\(.*\)".*/\1/p')
	[[ $said == "$version" ]] || { echo "the built binary says version '$said', not $version" >&2; exit 1; }
fi
{
	cat <<YAML
# The krew manifest of the kubectl plugin: written by hack/release.sh
# $version from the archives it built; a release uploads those archives to
# $repo/releases/tag/$version and submits this file to krew-index.
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: noderoll
spec:
  version: $version
  homepage: $repo
  shortDescription: Upgrade node groups safely, fast and visibly
  description: |
    noderoll replaces the nodes of an EKS managed or self-managed node group
    with nodes on a new AMI: it surges new nodes first, drains old ones
    through the Eviction API within the PodDisruptionBudgets, predicts how
    long it will take, and shows every node come and go. Its progress lives
    in the cluster, so a rerun resumes where a stopped one left off.
    Try: kubectl noderoll upgrade nodegroup --help
  platforms:
YAML
	for p in "${platforms[@]}"; do
		os=${p%/*} arch=${p#*/}
		cat <<YAML
  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $repo/releases/download/$version/kubectl-noderoll_${version}_${os}_${arch}.tar.gz
    sha256: ${sums[$p]}
    bin: kubectl-noderoll
    files:
    - from: kubectl-noderoll
      to: .
    - from: README.md
      to: .
YAML
	done
} > plugins/noderoll.yaml
echo "dist/: ${#platforms[@]} archives; plugins/noderoll.yaml written for $version" >&2
