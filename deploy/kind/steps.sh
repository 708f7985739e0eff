#!/usr/bin/env bash
# The seed's demo on kind clusters, step by step: what deploy/kind/ci-workflow.yaml runs, and what
# `make demo` does on the machine's own clusters (tests/testbed/src/seed_demo.rs), with the same
# charts, values and commands. Needs docker, kind, kubectl, helm and the images of `make images`.
#
#   deploy/kind/steps.sh all          # every step below, in order
#   deploy/kind/steps.sh <step> ...   # clusters images hub members example fetch uninstall check delete
#
# Clusters: kind-hub (public: its node's address on the Docker network is tunnel.endpoint),
# kind-cluster1 and kind-cluster2 (members; identical pod and Service ranges on purpose).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

NAMESPACE=nauti-system
GLOBAL_CIDR=10.112.0.0/12
MEMBERS=(cluster1 cluster2)
# The hub gateway's UDP port, also its node port (inside 30000-32767).
TUNNEL_PORT=31820
IMAGES_DIR=${IMAGES_DIR:-target/images}
WORK=${WORK:-target/kind-demo}
SEED_NAME=nginx-svc.default.svc.hyperos.local

say() { printf '\n==> %s\n' "$*"; }

hub_ip() {
  docker inspect -f '{{ .NetworkSettings.Networks.kind.IPAddress }}' hub-control-plane
}

# The values of each install, as arrays: `values_check` renders them without a cluster.
hub_values() {
  HUB_VALUES=(--set "tunnel.endpoint=$1" --set "tunnel.cidr=$GLOBAL_CIDR"
    --set "tunnel.port=$TUNNEL_PORT" --set gateway.service.type=NodePort)
}
member_values() {
  # kind nodes have no openvswitch module: the chart's chassis runs the userspace datapath.
  MEMBER_VALUES=(--set ovn.chassis.enabled=true --set ovn.chassis.datapathType=netdev)
}

step_clusters() {
  for name in hub "${MEMBERS[@]}"; do
    say "kind create cluster --name $name"
    kind create cluster --name "$name" --config deploy/kind/cluster.yaml --wait 120s
  done
}

step_images() {
  say "make images; kind load image-archive into every cluster"
  [ -s "$IMAGES_DIR/images.txt" ] || make images
  for name in hub "${MEMBERS[@]}"; do
    while read -r image archive; do
      # kind's loader keeps the archive's names; the archives carry none, so name them on import.
      for node in $(kind get nodes --name "$name"); do
        docker exec -i "$node" ctr -n k8s.io images import --index-name "$image" - <"$archive"
      done
    done <"$IMAGES_DIR/images.txt"
  done
}

step_hub() {
  mkdir -p "$WORK"
  local ip
  ip=$(hub_ip)
  hub_values "$ip"
  say "helm install nauti on the hub (tunnel.endpoint=$ip)"
  helm --kube-context kind-hub install nauti deploy/charts/nauti --namespace "$NAMESPACE" \
    --create-namespace "${HUB_VALUES[@]}" --wait --timeout 5m | tee "$WORK/hub-install.txt"
  kubectl --context kind-hub get configmap kube-root-ca.crt --namespace "$NAMESPACE" \
    -o jsonpath='{.data.ca\.crt}' >"$WORK/nauti-hub-ca.crt"
}

# The agent's install line as the hub printed it (NOTES), for this member.
printed_install_line() {
  sed -n '/^helm install nauti-agent/,/--set-file hub.caCert/p' "$1" | tr -d '\\\n' \
    | sed "s/cluster.clusterID=cluster1/cluster.clusterID=$2/"
}

step_members() {
  member_values
  local first=1 id line
  for id in "${MEMBERS[@]}"; do
    if [ "$first" = 0 ]; then
      # A token is good for one member: an upgrade of the hub prints the next one.
      helm --kube-context kind-hub upgrade nauti deploy/charts/nauti --namespace "$NAMESPACE" \
        --reuse-values >"$WORK/hub-install.txt"
    fi
    first=0
    line=$(printed_install_line "$WORK/hub-install.txt" "$id")
    [ -n "$line" ] || { echo "the hub printed no nauti-agent install line" >&2; exit 1; }
    say "$line"
    # The printed line holds no quotes or spaces inside a word: split it, never evaluate it.
    local -a words
    read -r -a words <<<"${line/hub.caCert=nauti-hub-ca.crt/hub.caCert=$WORK/nauti-hub-ca.crt}"
    helm --kube-context "kind-$id" "${words[@]:1}" "${MEMBER_VALUES[@]}" --wait --timeout 5m
    kubectl --context "kind-$id" rollout status -n "$NAMESPACE" deploy/octopus-member --timeout 3m
  done
}

step_example() {
  # The example in both members (cluster2's pod is where curl runs), exported from cluster1 only.
  local id
  for id in "${MEMBERS[@]}"; do
    say "kubectl create -f nginx-deploy.yaml ($id)"
    kubectl --context "kind-$id" apply -f deploy/kind/nginx-deploy.yaml
    kubectl --context "kind-$id" rollout status deploy/nginx-app --timeout 3m
  done
  say "kubectl create -f nginx-export.yaml (cluster1)"
  kubectl --context kind-cluster1 apply -f tests/demo/nginx-export.yaml
}

step_fetch() {
  local pod
  pod=$(kubectl --context kind-cluster2 get pods -l app=nginx-app -o jsonpath='{.items[0].metadata.name}')
  say "kubectl exec -it $pod -c alpine -- curl $SEED_NAME (cluster2)"
  for _ in $(seq 60); do
    if kubectl --context kind-cluster2 exec "$pod" -c alpine -- curl -s --max-time 3 "$SEED_NAME" \
      | tee "$WORK/page.html" | grep -q '<title>Welcome to nginx!</title>'; then
      cat "$WORK/page.html"
      return 0
    fi
    sleep 2
  done
  echo "the nginx page of cluster1 did not arrive in cluster2" >&2
  exit 1
}

step_uninstall() {
  for id in "${MEMBERS[@]}"; do
    say "helm uninstall nauti-agent -n $NAMESPACE ($id)"
    helm --kube-context "kind-$id" uninstall nauti-agent --namespace "$NAMESPACE" --wait
  done
  say "helm uninstall nauti -n $NAMESPACE (hub)"
  helm --kube-context kind-hub uninstall nauti --namespace "$NAMESPACE" --wait
}

step_check() {
  say "nothing of Nauti left"
  local left=0
  for id in "${MEMBERS[@]}"; do
    if kubectl --context "kind-$id" get pods -A -o json | grep -q '"nauti.io/'; then
      echo "$id: pods still carry nauti.io/* annotations" >&2
      left=1
    fi
  done
  if kubectl --context kind-hub get peers.nauti.io -A -o name 2>/dev/null | grep -q .; then
    echo "hub: Peers left" >&2
    left=1
  fi
  [ "$left" = 0 ]
}

step_delete() {
  for name in hub "${MEMBERS[@]}"; do kind delete cluster --name "$name"; done
}

# Renders every install of the demo with placeholder addresses: the values pass the charts'
# schemas, without a cluster (the test-bed's `kind` test runs it).
values_check() {
  local ca
  ca=$(mktemp)
  printf -- '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n' >"$ca"
  hub_values 192.0.2.1
  member_values
  helm template nauti deploy/charts/nauti --namespace "$NAMESPACE" "${HUB_VALUES[@]}" >/dev/null
  for id in "${MEMBERS[@]}"; do
    helm template nauti-agent deploy/charts/nauti-agent --namespace "$NAMESPACE" \
      --set hub.hubURL=https://192.0.2.1:6443 --set "cluster.clusterID=$id" \
      --set hub.bootstrapToken=abcdef.0123456789abcdef --set-file "hub.caCert=$ca" \
      "${MEMBER_VALUES[@]}" >/dev/null
  done
  rm -f "$ca"
  echo "values ok"
}

main() {
  [ $# -gt 0 ] || { sed -n '2,10p' "${BASH_SOURCE[0]}"; exit 2; }
  local steps=("$@")
  [ "$1" = all ] && steps=(clusters images hub members example fetch uninstall check)
  for s in "${steps[@]}"; do
    case "$s" in
      values_check) values_check ;;
      clusters | images | hub | members | example | fetch | uninstall | check | delete) "step_$s" ;;
      *) echo "unknown step: $s" >&2; exit 2 ;;
    esac
  done
}

main "$@"
