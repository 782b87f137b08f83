# etc/: sample configuration.
