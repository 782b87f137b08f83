# man/: installed by make install, linted by make check when mandoc is there.
dist_man_MANS += man/mxrelay.8 man/mxrelayd.8 man/mxrelay.conf.5
TESTS += tests/man-lint.sh
EXTRA_DIST += tests/man-lint.sh
