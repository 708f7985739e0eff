#!/usr/bin/env bash
# Copies the least-privilege RBAC of deploy/rbac into the charts' templates, so that each chart
# is self-contained: the Namespace is left out (`helm install --create-namespace` makes it),
# nauti-system becomes the release namespace, and the chart's labels are added. Run it after
# changing a file of deploy/rbac; the test `chart_rbac_equals_deploy_rbac` fails until then.
# Usage: deploy/charts/copy-rbac.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

copy() {
  local name=$1 out=$2 labels=$3
  {
    printf '# Copied from deploy/rbac/%s.yaml by deploy/charts/copy-rbac.sh (the test\n' "$name"
    printf '# `chart_rbac_equals_deploy_rbac` keeps them equal), with the release namespace for nauti-system.\n'
    awk -v labels="$labels" '
      BEGIN { n = 0 }
      /^---$/ { n++; next }
      { doc[n] = doc[n] $0 "\n" }
      END {
        for (i = 0; i <= n; i++) {
          d = doc[i]
          if (d ~ /(^|\n)kind: Namespace\n/) {
            # The Namespace goes; the comments before it (the file header) stay.
            m = split(d, lines, "\n")
            for (j = 1; j <= m; j++) if (lines[j] ~ /^#/) printf "%s\n", lines[j]
            doc[i] = ""
            continue
          }
          gsub(/namespace: nauti-system/, "namespace: {{ .Release.Namespace }}", d)
          gsub(/system:serviceaccount:nauti-system:/, "system:serviceaccount:{{ .Release.Namespace }}:", d)
          sub(/\nmetadata:\n/, "\nmetadata:\n  labels:\n    {{- include \"" labels "\" . | nindent 4 }}\n", d)
          doc[i] = d
        }
        sep = ""
        for (i = 0; i <= n; i++) if (doc[i] != "") { printf "%s%s", sep, doc[i]; sep = "---\n" }
      }' "../rbac/$name.yaml"
  } >"$out"
}

copy octopus-hub nauti/templates/rbac.yaml nauti.labels
for name in nri ovnmaster crossdns octopus-member nautictl-clean; do
  copy "$name" "nauti-agent/templates/rbac-$name.yaml" nauti-agent.labels
done
