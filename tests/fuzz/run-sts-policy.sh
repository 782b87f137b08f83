#!/bin/sh
# Replays the MTA-STS fuzz corpus (tests/fuzz/corpus/sts_policy) through fuzz_sts_policy.
exec ./tests/fuzz/fuzz_sts_policy "${srcdir:-.}/tests/fuzz/corpus/sts_policy"
