#!/bin/sh
# Replays the message module's fuzz corpora (make check runs this from the
# top build directory; the harness exports srcdir).
set -e
: "${srcdir:=.}"
./tests/fuzz/fuzz_addrlist "$srcdir/tests/fuzz/corpus/addrlist"
./tests/fuzz/fuzz_headers "$srcdir/tests/fuzz/corpus/headers"
