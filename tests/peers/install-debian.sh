#!/usr/bin/env bash
# Installs the Debian packages the test-bed and the demo use. Idempotent: does nothing when all are present.
set -euo pipefail
PACKAGES=(
  openvswitch-switch ovn-central ovn-host runc containernetworking-plugins etcd-server
  iproute2 iputils-ping ethtool iperf3 bind9-dnsutils dnsperf wireguard-tools busybox-static
  protobuf-compiler buildah nftables iptables socat curl jq openssl util-linux procps psmisc
  kmod tcpdump gcc libc6-dev nginx netcat-openbsd
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "debian packages: all ${#PACKAGES[@]} present"
  exit 0
fi
echo "debian packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Services must not start on the host: every test starts its own daemons in its own run directories.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}"
