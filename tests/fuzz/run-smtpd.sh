#!/bin/sh
# Replays the listener's fuzz corpora (commands and AUTH) through their
# targets (automake TESTS cannot pass arguments).
d="${srcdir:-.}/tests/fuzz/corpus"
./tests/fuzz/fuzz_smtpd_cmd "$d/smtpd_cmd" || exit 1
exec ./tests/fuzz/fuzz_smtpd_auth "$d/smtpd_auth"
