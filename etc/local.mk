# etc/: sample configuration, installed as an example (never over a live
# /etc/mxrelay.conf).
exampledir = $(docdir)/examples
dist_example_DATA = etc/mxrelay.conf
