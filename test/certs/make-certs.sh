#!/usr/bin/env bash
# Hand-made mesh certificates for mTLS tests and for trying the sidecar by hand with curl and
# openssl s_client. Everything is EC P-256, made by openssl into OUT_DIR:
#
#   root-a.crt/key       the mesh root that signs the identities below
#   root-old.crt/key     a second root: trusted during a rotation, then retired
#   root-other.crt/key   an unrelated CA that the mesh never trusts
#   server.crt/key       spiffe://TD/ns/default/sa/api     (root-a; also DNS:localhost, IP:127.0.0.1 for curl)
#   client.crt/key       spiffe://TD/ns/default/sa/web     (root-a)          a valid peer
#   client-expired       spiffe://TD/ns/default/sa/web     (root-a)          expired in 2021
#   client-other-ca      spiffe://TD/ns/default/sa/web     (root-other)      unknown CA
#   client-old-root      spiffe://TD/ns/default/sa/web     (root-old)        valid until root-old is retired
#   client-ledger        spiffe://TD/ns/payments/sa/ledger (root-a)          for AuthorizationPolicy denials
#   client-other-td      spiffe://evil.example/ns/default/sa/web (root-a)    outside the trust domain
#   client-no-spiffe     DNS:web.example only              (root-a)          no SPIFFE ID
#   bundle.pem           root-a + root-old (the trust bundle during the rotation)
#
# Usage: test/certs/make-certs.sh OUT_DIR [TRUST_DOMAIN]   (TRUST_DOMAIN defaults to cluster.local)

set -euo pipefail

out=${1:?usage: make-certs.sh OUT_DIR [TRUST_DOMAIN]}
td=${2:-cluster.local}
mkdir -p "$out"
cd "$out"

ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

root() {
  openssl req -x509 "${ec[@]}" -keyout "$1.key" -out "$1.crt" -days 365 -subj "/O=$td/CN=tracemesh test $1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -addext subjectKeyIdentifier=hash 2>/dev/null
  # `openssl ca` keeps a tiny database per issuer; it lets us choose the validity dates.
  mkdir -p "db-$1"
  : >"db-$1/index.txt"
  cat >"db-$1/ca.cnf" <<EOF
[ca]
default_ca = mesh
[mesh]
database = db-$1/index.txt
new_certs_dir = db-$1
certificate = $1.crt
private_key = $1.key
rand_serial = yes
default_md = sha256
policy = anything
copy_extensions = none
unique_subject = no
[anything]
organizationName = optional
commonName = optional
EOF
}

# leaf NAME ISSUER SAN [STARTDATE ENDDATE]   (dates as YYYYMMDDHHMMSSZ)
leaf() {
  local name=$1 issuer=$2 san=$3
  local start=${4:-$(date -u -d '-1 minute' +%Y%m%d%H%M%SZ)} end=${5:-$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)}
  openssl req -new "${ec[@]}" -keyout "$name.key" -out "$name.csr" -subj "/O=tracemesh test" 2>/dev/null
  cat >"$name.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  openssl ca -batch -notext -config "db-$issuer/ca.cnf" -extfile "$name.ext" -startdate "$start" -enddate "$end" \
    -in "$name.csr" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

root root-a
root root-old
root root-other

leaf server root-a "critical,URI:spiffe://$td/ns/default/sa/api,DNS:localhost,IP:127.0.0.1"
leaf client root-a "critical,URI:spiffe://$td/ns/default/sa/web"
leaf client-expired root-a "critical,URI:spiffe://$td/ns/default/sa/web" 20210101000000Z 20210102000000Z
leaf client-other-ca root-other "critical,URI:spiffe://$td/ns/default/sa/web"
leaf client-old-root root-old "critical,URI:spiffe://$td/ns/default/sa/web"
leaf client-ledger root-a "critical,URI:spiffe://$td/ns/payments/sa/ledger"
leaf client-other-td root-a "critical,URI:spiffe://evil.example/ns/default/sa/web"
leaf client-no-spiffe root-a "DNS:web.example"
cat root-a.crt root-old.crt >bundle.pem
chmod 600 ./*.key
echo "certificates for trust domain $td in $(pwd)"
