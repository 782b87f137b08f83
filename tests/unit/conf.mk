# tests/unit/conf.mk: owned by the conf module (sources, unit tests, fuzz target).
