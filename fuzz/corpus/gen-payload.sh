#!/usr/bin/env bash
# Writes fuzz/corpus/payload/*: a base64 signature line, then a cosign
# payload, signed with the test-only key of crates/wyrcan-core/src/trust/
# testdata (p256.pk8) so that the target's fixed policy accepts the
# well-formed ones and mutations start from a verified signature.
# ECDSA signatures are randomized: running this again changes the bytes.
set -euo pipefail
cd "$(dirname "$0")/payload"
key=../../../crates/wyrcan-core/src/trust/testdata/p256.pk8
d1=sha256:1111111111111111111111111111111111111111111111111111111111111111
d2=sha256:2222222222222222222222222222222222222222222222222222222222222222

payload() {
  printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":%s}' "$1" "$2" "${3:-null}"
}

# seed NAME PAYLOAD: the payload signed by the test key.
seed() {
  local sig
  sig=$(printf '%s' "$2" | openssl dgst -sha256 -keyform DER -sign "$key" | base64 -w0)
  printf '%s\n%s' "$sig" "$2" >"$1"
}

seed repository "$(payload 127.0.0.1:5000/os "$d1")"
seed tagged "$(payload 127.0.0.1:5000/os:1 "$d1" '{"creator":"cosign","timestamp":1700000000}')"
seed exact "$(payload "127.0.0.1:5000/exact@$d1" "$d1")"
seed other-digest "$(payload 127.0.0.1:5000/os:1 "$d2")"
seed bad-payload '{"critical":{"type":"cosign container image signature","image":{}},"optional":[]}'
printf 'AAAA\n%s' "$(payload 127.0.0.1:5000/os:1 "$d1")" >unsigned
payload 127.0.0.1:5000/os "$d1" >payload-only
