# man/: installed by make install.
