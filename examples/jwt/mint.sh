#!/bin/sh
# Mints an RS256 token of the demo issuer of policies/tenants.yaml with openssl:
#   examples/jwt/mint.sh SUB TENANT [EXP] [KEY]
# EXP defaults to 4102444800 (2100-01-01); KEY to examples/jwt/demo-issuer.key (a DEMO key, public on purpose).
set -eu
here=$(dirname "$0")
sub=$1 tenant=$2 exp=${3:-4102444800} key=${4:-$here/demo-issuer.key}
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"demo-1"}' | b64url)
payload=$(printf '{"iss":"https://auth.saas.example.com","sub":"%s","tenant":"%s","exp":%s}' "$sub" "$tenant" "$exp" | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$key" -binary | b64url)
printf '%s.%s.%s\n' "$header" "$payload" "$signature"
