# tests/unit/message.mk: owned by the message module (sources, unit tests, fuzz target).
