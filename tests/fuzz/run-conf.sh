#!/bin/sh
# Replays the conf fuzz corpus (tests/fuzz/corpus/conf) through fuzz_conf.
exec ./tests/fuzz/fuzz_conf "${srcdir:-.}/tests/fuzz/corpus/conf"
