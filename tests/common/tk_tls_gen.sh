#!/bin/sh
# Makes the certificates of the TLS tests in directory $1 (tk_tls.h) with
# the openssl command line: EC P-256 keys, nothing committed.
#
#   ca.pem, ca.key            the CA of the pool
#   server.pem/.key           signed by it, for 127.0.0.1 and localhost
#   client.pem/.key           signed by it
#   client_enc.key            client.key encrypted (AES-256), its password
#   password.txt              in password.txt
#   soon.pem/.key             signed by it, expires in 10 days
#   expired.pem/.key          signed by it, expired in 2020
#   revoked.pem/.key          signed by it, revoked in crl.pem
#   other_ca.pem              another CA; stranger.pem/.key signed by it
set -eu
d=$1
cd "$d"
umask 077
cat > ca.cnf <<CNF
[ ca ]
default_ca = tk_ca
[ tk_ca ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
certificate = ca.pem
private_key = ca.key
default_md = sha256
default_days = 825
default_crl_days = 30
policy = tk_policy
copy_extensions = copy
unique_subject = no
[ tk_policy ]
commonName = supplied
[ req ]
distinguished_name = tk_dn
[ tk_dn ]
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ leaf ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
CNF
: > index.txt
echo 1000 > serial
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name subject
    key "$1.key"
    openssl req -new -x509 -config ca.cnf -extensions v3_ca -key "$1.key" \
        -subj "/CN=$2" -days 3650 -out "$1.pem"
}
leaf() { # name cn [ca args...]
    n=$1; cn=$2; shift 2
    key "$n.key"
    openssl req -new -config ca.cnf -key "$n.key" -subj "/CN=$cn" -out "$n.csr"
    openssl ca -batch -config ca.cnf -extensions leaf -notext "$@" \
        -in "$n.csr" -out "$n.pem" 2>/dev/null
}
ca ca "tk test CA"
leaf server "tk server"
leaf client "tk client"
leaf soon "tk soon" -days 10
leaf expired "tk expired" -startdate 20200101000000Z -enddate 20200201000000Z
leaf revoked "tk revoked"
openssl ca -batch -config ca.cnf -revoke revoked.pem 2>/dev/null
openssl ca -batch -config ca.cnf -gencrl -out crl.pem 2>/dev/null
printf 'Tk-pass-1234' > password.txt
openssl pkey -in client.key -aes256 -passout file:password.txt \
    -out client_enc.key
# another CA and a certificate of it
mkdir -p other
cd other
cp ../ca.cnf .
: > index.txt
echo 1000 > serial
ca ca "tk other CA"
leaf stranger "tk stranger"
cp ca.pem ../other_ca.pem
cp stranger.pem stranger.key ..
