#!/usr/bin/env bash
# The supply-chain tools, from crates.io, pinned, into .tools/ (installed like the test database):
#   cargo-deny        licences, bans and sources against deny.toml (.ci/run)
#   cargo-auditable   embeds the dependency list into a binary (the Dockerfile's build, and the musl build the
#                     container test runs)
#
# Source this file, then:
#   supply_chain_install   install both (once; a few minutes of compiling the first time); sets and exports
#                          CARGO_DENY and CARGO_AUDITABLE, and puts cargo-auditable on PATH (cargo finds
#                          subcommands there)

SUPPLY_CHAIN_TOOLS_DIR="${TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}"
CARGO_DENY_VERSION="0.20.2"
CARGO_AUDITABLE_VERSION="0.7.7"

# install_pinned NAME VERSION: cargo install --locked into .tools/NAME, unless that version is there.
supply_chain_install_one() {
  local name="$1" version="$2" root="$SUPPLY_CHAIN_TOOLS_DIR/$1"
  if [ -x "$root/bin/$name" ] && grep -q "^\"$name $version " "$root/.crates.toml" 2>/dev/null; then
    return 0
  fi
  echo "supply-chain: installing $name $version (crates.io) into $root" >&2
  cargo install --quiet --locked --root "$root" "$name" --version "$version"
}

supply_chain_install() {
  supply_chain_install_one cargo-deny "$CARGO_DENY_VERSION" || return 1
  supply_chain_install_one cargo-auditable "$CARGO_AUDITABLE_VERSION" || return 1
  CARGO_DENY="$SUPPLY_CHAIN_TOOLS_DIR/cargo-deny/bin/cargo-deny"
  CARGO_AUDITABLE="$SUPPLY_CHAIN_TOOLS_DIR/cargo-auditable/bin/cargo-auditable"
  PATH="$SUPPLY_CHAIN_TOOLS_DIR/cargo-auditable/bin:$PATH"
  export CARGO_DENY CARGO_AUDITABLE PATH
}
