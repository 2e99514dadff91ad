//go:build tools

// Package tools pins the programs this module builds: the API server, and the controller manager whose
// garbage collector, namespace and service-account controllers a fresh cluster runs.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
