//go:build tools

// Package tools pins the commands built from this module (see tests/peers/build.sh).
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
