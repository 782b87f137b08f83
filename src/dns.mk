# src/dns.mk: c-ares resolver module and the test DNS server (sources, tests).
