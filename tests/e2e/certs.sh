#!/bin/sh
# certs.sh DIR NAME...: make a test CA and certificates in DIR.
#   DIR/ca.pem                 the CA certificate
#   DIR/good.pem, good.key     signed by the CA for every NAME (SAN; an
#                              IPv4 address is an IP SAN)
#   DIR/chain.pem              good.pem then ca.pem: a server sending it
#                              lets a DANE-TA (TLSA 2 x x) client find the CA
#   DIR/self.pem, self.key     self-signed for the first NAME
#   DIR/wrong.pem, wrong.key   signed by the CA for another name
set -e
dir=$1
shift
san=""
for n in "$@"; do
	case $n in
	*[!0-9.]*)	san="${san:+$san,}DNS:$n" ;;
	*)		san="${san:+$san,}IP:$n" ;;
	esac
done
cd "$dir"
q() { "$@" > /dev/null 2>&1; }
q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=mxrelay test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
sign() {
	q openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
	printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$3" > "$1.ext"
	q openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
	    -out "$1.pem" -days 2 -extfile "$1.ext"
}
sign good "$1" "$san"
cat good.pem ca.pem > chain.pem
sign wrong wrong.invalid "DNS:wrong.invalid"
q openssl req -x509 -newkey rsa:2048 -nodes -keyout self.key -out self.pem -days 2 \
    -subj "/CN=$1" -addext "subjectAltName=DNS:$1"
