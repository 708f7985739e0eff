//go:build tools

// Package tools pins the commands built from this module (see tests/peers/build.sh).
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
