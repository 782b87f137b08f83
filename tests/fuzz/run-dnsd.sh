#!/bin/sh
# Replays the DNS wire corpus (tests/fuzz/corpus/dnsd) through fuzz_dnsd.
exec ./tests/fuzz/fuzz_dnsd "${srcdir:-.}/tests/fuzz/corpus/dnsd"
