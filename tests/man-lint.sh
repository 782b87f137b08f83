#!/bin/sh
# The man pages must be free of mandoc warnings.
command -v mandoc > /dev/null || { echo "# mandoc not installed"; exit 77; }
rc=0
for m in "${top_srcdir:-.}"/man/*.[0-9]; do
	mandoc -Tlint -Wwarning "$m" || rc=1
	echo "checked $m"
done
exit $rc
