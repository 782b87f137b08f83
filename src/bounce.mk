# src/bounce.mk: DSN builder and retry arithmetic (sources, unit tests).
