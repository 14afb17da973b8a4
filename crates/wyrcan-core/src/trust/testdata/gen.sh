#!/usr/bin/env bash
# Writes the key and signature vectors of src/trust with OpenSSL, the tool
# cosign's own docs use to sign a payload by hand (EXAMPLES.md, "Sign With
# OpenSSL, Verify With Cosign"). Keys are random: running this again
# changes every file, and the tests still pass.
#
# p256.pk8 is a TEST-ONLY private key (PKCS#8 DER): the tests sign payloads
# of their own with it, through ring. Nothing trusts it.
set -euo pipefail
cd "$(dirname "$0")"

# A cosign payload, as `cosign sign` writes it (no final newline).
printf '%s' '{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/os"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":null}' >payload.json

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256.key
# PKCS#8 DER, the form ring reads (genpkey's own DER output is SEC1).
openssl pkcs8 -topk8 -nocrypt -in p256.key -outform DER -out p256.pk8
openssl pkey -in p256.key -pubout -out p256.pub.pem
openssl pkey -in p256.key -pubout -outform DER -out p256.pub.der
openssl dgst -sha256 -sign p256.key -out p256.sig payload.json
rm p256.key

# A second P-256 key: a valid key that made none of the signatures.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key
openssl pkey -in other.key -pubout -out other.pub.pem
rm other.key

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key
openssl pkey -in p384.key -pubout -out p384.pub.pem
openssl dgst -sha384 -sign p384.key -out p384.sig payload.json
# cosign and containers/image hash with SHA-256 whatever the curve.
openssl dgst -sha256 -sign p384.key -out p384-sha256.sig payload.json
rm p384.key

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2048.key
openssl pkey -in rsa2048.key -pubout -out rsa2048.pub.pem
openssl dgst -sha256 -sign rsa2048.key -out rsa2048.sig payload.json
openssl dgst -sha256 -sign rsa2048.key -sigopt rsa_padding_mode:pss \
  -sigopt rsa_pss_saltlen:digest -out rsa2048-pss.sig payload.json
rm rsa2048.key

# Too small to trust.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.key
openssl pkey -in rsa1024.key -pubout -out rsa1024.pub.pem
rm rsa1024.key

openssl genpkey -algorithm ED25519 -out ed25519.key
openssl pkey -in ed25519.key -pubout -out ed25519.pub.pem
rm ed25519.key
