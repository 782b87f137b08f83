# src/net.mk: event loop, io, TLS (sources, unit tests).
