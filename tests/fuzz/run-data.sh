#!/bin/sh
# Replays the DATA decoder's fuzz corpus through its target (automake
# TESTS cannot pass arguments).
exec ./tests/fuzz/fuzz_smtpd_data "${srcdir:-.}/tests/fuzz/corpus/smtpd_data"
