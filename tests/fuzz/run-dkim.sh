#!/bin/sh
# Replays the DKIM signer's fuzz corpus (tests/fuzz/corpus/dkim) through
# fuzz_dkim (automake TESTS cannot pass arguments).
exec ./tests/fuzz/fuzz_dkim "${srcdir:-.}/tests/fuzz/corpus/dkim"
