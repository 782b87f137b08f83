#!/bin/sh
# Replays the envelope fuzz corpus (automake TESTS cannot pass arguments).
exec ./tests/fuzz/fuzz_envelope "${srcdir:-.}/tests/fuzz/corpus/envelope"
