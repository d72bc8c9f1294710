#!/usr/bin/env bash
# Builds the Debian package: target/debian/zerolog_<version>-1_<arch>.deb.
#   packaging/build-deb.sh            (needs cargo-deb: cargo install cargo-deb --locked)
# Release binaries are built once, the man pages and shell completions are generated from the
# clap definitions into target/assets, and cargo-deb packs them, stripping the binaries
# ([profile.release] keeps debug info for profiling, the package does not).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v cargo-deb >/dev/null || { echo "cargo-deb missing: cargo install cargo-deb --locked" >&2; exit 1; }
cargo build --release --locked --bins
rm -rf target/assets
cargo run --release --locked -p zerolog-assets -- target/assets
cargo deb --no-build --strip --locked "$@"
