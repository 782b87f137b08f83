#!/bin/sh
# Replays the SMTP reply fuzz corpus (tests/fuzz/corpus/reply) through fuzz_reply.
exec ./tests/fuzz/fuzz_reply "${srcdir:-.}/tests/fuzz/corpus/reply"
