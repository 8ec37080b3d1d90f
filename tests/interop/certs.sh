#!/bin/sh
# Generates the throw-away certificates of the TLS tests into DIR (created if needed), with
# the openssl command. Nothing here is secret or kept: the tests call it at test time in a
# temporary directory (lib.mjs makeCerts()).
#
#   sh certs.sh DIR
#
#   ca.pem ca.key               the test CA ("wsx test CA")
#   server.pem server.key       CN=wsx-test-server-A, DNS:localhost + IP:127.0.0.1, serial 0x1001
#   server-b.pem server-b.key   CN=wsx-test-server-B, the same names, serial 0x1002 (reload)
#   other.pem other.key         CN=other.test, DNS:other.test only, serial 0x2001 (SNI, mismatch)
#   rogue-ca.pem                another CA that nothing trusts ("wsx unknown CA")
#   rogue.pem rogue.key         CN=wsx-test-rogue, localhost + 127.0.0.1, signed by rogue-ca
#
# EC P-256 keys (fast to make), valid from now for 7 days.
set -eu
dir=${1:?usage: certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
    newkey "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 7 -subj "$2" -out "$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash"
}

leaf() { # name cn san ca serial
    newkey "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    cat >"$1.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$3
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
    openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -set_serial "$5" -days 7 \
        -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=wsx test CA"
leaf server wsx-test-server-A "DNS:localhost,IP:127.0.0.1" ca 0x1001
leaf server-b wsx-test-server-B "DNS:localhost,IP:127.0.0.1" ca 0x1002
leaf other other.test "DNS:other.test" ca 0x2001
ca rogue-ca "/CN=wsx unknown CA"
leaf rogue wsx-test-rogue "DNS:localhost,IP:127.0.0.1" rogue-ca 0x3001
rm -f rogue-ca.key
chmod 644 ./*.pem ./*.key
echo "certs: made in $dir"
