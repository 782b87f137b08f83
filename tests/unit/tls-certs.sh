#!/bin/sh
# tls-certs.sh DIR: test certificates for tests/unit/test_tls, made fresh
# with the openssl command line tool (EC P-256 keys, valid two days).
#   ca.crt ca.key          a test CA
#   server.crt server.key  "mx.test", signed by the CA
#   wrong.crt wrong.key    "other.test", signed by the CA (wrong name)
#   self.crt self.key      "mx.test", self-signed
#   other.key              a key that matches no certificate
#   chain.crt              server.crt then ca.crt (for DANE-TA: the
#                          server sends its CA)
#   wrongchain.crt         wrong.crt then ca.crt
set -eu
dir=$1
cd "$dir"

key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out "$1" 2>/dev/null
}

# $1 name, $2 serial: a leaf certificate for DNS name $1 signed by the CA.
leaf() {
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' \
	    "$1" > "$3.ext"
	openssl req -new -key "$3.key" -subj "/CN=$1" -out "$3.csr"
	openssl x509 -req -in "$3.csr" -CA ca.crt -CAkey ca.key \
	    -set_serial "$2" -days 2 -extfile "$3.ext" -out "$3.crt" \
	    2>/dev/null
	rm -f "$3.csr" "$3.ext"
}

key ca.key
openssl req -x509 -new -key ca.key -subj "/CN=mxrelay test CA" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt

key server.key
leaf mx.test 2 server
key wrong.key
leaf other.test 3 wrong

key self.key
openssl req -x509 -new -key self.key -subj "/CN=mx.test" -days 2 \
    -addext "subjectAltName=DNS:mx.test" -out self.crt

key other.key

cat server.crt ca.crt > chain.crt
cat wrong.crt ca.crt > wrongchain.crt
