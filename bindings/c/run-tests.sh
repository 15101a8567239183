#!/usr/bin/env bash
# Builds the C sample and tests against an installed prefix with pkg-config, exactly as a user
# would (gcc -std=c11 -Wall -Wextra -Werror), then runs them.
set -euo pipefail
prefix=${1:?usage: run-tests.sh PREFIX}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
mkdir -p "$out"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
flags=$(pkg-config --cflags --libs fastmcpauth jansson)
for name in sample test_abi test_jwt test_store test_auth; do
  gcc -std=c11 -Wall -Wextra -Werror -o "$out/$name" "$here/$name.c" $flags -Wl,-rpath,"$prefix/lib"
done
"$out/sample"
# The one version (VERSION) is what pkg-config, the header and the library report.
version=$(cat "$here/../../VERSION")
pc_version=$(pkg-config --modversion fastmcpauth)
[ "$pc_version" = "$version" ] || { echo "FAIL fastmcpauth.pc says $pc_version, VERSION says $version"; exit 1; }
"$out/test_abi" "$version"
vectors="${FASTMCPAUTH_VECTORS:-$here/../../Tests/vectors}"
"$out/test_jwt" "$vectors"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$out/test_store" "$vectors" "$scratch"
"$out/test_auth"
