#!/bin/sh
# Replays the DNS answer corpus (tests/fuzz/corpus/dns_answer) through
# fuzz_dns_answer.
exec ./tests/fuzz/fuzz_dns_answer "${srcdir:-.}/tests/fuzz/corpus/dns_answer"
