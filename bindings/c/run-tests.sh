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
for name in sample test_abi test_jwt test_store test_auth test_client oauth_token; do
  gcc -std=c11 -Wall -Wextra -Werror -g -o "$out/$name" "$here/$name.c" $flags -Wl,-rpath,"$prefix/lib"
done
# Every program runs under valgrind memcheck: an invalid read or write, a use of uninitialised
# memory or a definite leak fails the run (FASTMCPAUTH_NO_VALGRIND=1 runs them bare; add
# --track-origins=yes by hand to find where an uninitialised value came from).
memcheck=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
  --show-leak-kinds=definite)
[ "${FASTMCPAUTH_NO_VALGRIND:-}" = 1 ] && memcheck=()
"${memcheck[@]}" "$out/sample"
# The one version (VERSION) is what pkg-config, the header and the library report.
version=$(cat "$here/../../VERSION")
pc_version=$(pkg-config --modversion fastmcpauth)
[ "$pc_version" = "$version" ] || { echo "FAIL fastmcpauth.pc says $pc_version, VERSION says $version"; exit 1; }
"${memcheck[@]}" "$out/test_abi" "$version"
vectors="${FASTMCPAUTH_VECTORS:-$here/../../Tests/vectors}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# test_jwt (RSA key generation and thousands of verifications: minutes under memcheck) runs
# beside the others, on the second core.
"${memcheck[@]}" "$out/test_jwt" "$vectors" > "$scratch/test_jwt.log" 2>&1 &
jwt_pid=$!
"${memcheck[@]}" "$out/test_store" "$vectors" "$scratch"
"${memcheck[@]}" "$out/test_auth"
"${memcheck[@]}" "$out/test_client" "$scratch"
jwt_status=0
wait "$jwt_pid" || jwt_status=$?
cat "$scratch/test_jwt.log"
[ "$jwt_status" = 0 ] || { echo "FAIL test_jwt (exit $jwt_status)"; exit 1; }
