//go:build tools

// Package tools pins the Kubernetes control-plane binaries the sandbox runs.
// It is a module of its own so that the main module never depends on
// k8s.io/kubernetes; the blank imports let `go mod tidy` record every checksum.
package tools

import (
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
)
