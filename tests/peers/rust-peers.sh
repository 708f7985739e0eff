#!/usr/bin/env bash
# Peers published on crates.io: built once per version into $NAUTI_PEERS_DIR, reused afterwards.
set -euo pipefail
PEERS=${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}
mkdir -p "$PEERS/bin"
install_crate() { # crate version binary
  local crate=$1 version=$2 binary=$3 root="$PEERS/cargo/$1-$2"
  if [ ! -x "$root/bin/$binary" ]; then
    cargo install --quiet --locked --root "$root" --version "$version" "$crate"
  fi
  ln -sfn "$root/bin/$binary" "$PEERS/bin/$binary"
}
install_crate boringtun-cli 0.7.1 boringtun-cli
echo "boringtun-cli $("$PEERS/bin/boringtun-cli" --version | awk '{print $2}')"
