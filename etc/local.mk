# etc/: sample configuration, installed as an example (never over a live
# /etc/mxrelay.conf), and the systemd unit of mxrelayd.
exampledir = $(docdir)/examples
dist_example_DATA = etc/mxrelay.conf

# The unit is made by make, not configure: configure would leave
# "${prefix}" in ExecStart.  Installed into systemdsystemunitdir
# (--with-systemdsystemunitdir; =no leaves it out).
EXTRA_DIST += etc/mxrelayd.service.in
CLEANFILES += etc/mxrelayd.service
if HAVE_SYSTEMD_UNIT
nodist_systemdsystemunit_DATA = etc/mxrelayd.service
endif
etc/mxrelayd.service: $(srcdir)/etc/mxrelayd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) etc && rm -f $@ $@.tmp && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' \
	    -e 's|@bindir[@]|$(bindir)|g' \
	    -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    -e 's|@localstatedir[@]|$(localstatedir)|g' \
	    -e 's|@submitgroup[@]|$(submitgroup)|g' \
	    $(srcdir)/etc/mxrelayd.service.in > $@.tmp && \
	if grep '@[a-z_]*@' $@.tmp >&2; then \
	  echo "$@: unsubstituted variable" >&2; rm -f $@.tmp; exit 1; \
	fi && mv $@.tmp $@ && \
	case '$(runstatedir)' in /run|/run/|/var/run|/var/run/) ;; *) \
	  echo "$@: warning: systemd makes /run/mxrelay (RuntimeDirectory=)," \
	    "but runtime_dir defaults to $(runstatedir)/mxrelay:" \
	    "set runtime_dir = /run/mxrelay in mxrelay.conf" >&2;; \
	esac

# distcheck installs under its own prefix; the default unit directory
# (systemd's, e.g. /lib/systemd/system) is outside it, so move it in.
# The sendmail/mailq links are tried there too.
AM_DISTCHECK_CONFIGURE_FLAGS = --enable-sendmail-links
if HAVE_SYSTEMD_UNIT
AM_DISTCHECK_CONFIGURE_FLAGS += \
	--with-systemdsystemunitdir=$$dc_install_base/$(systemdsystemunitdir)
endif

# --enable-sendmail-links: sbindir/sendmail and bindir/mailq are symbolic
# links to mxrelay.  Relative when both directories are absolute (so that
# they work under DESTDIR too), made and removed by the install hooks.
install-exec-hook: install-sendmail-links install-submit-group
uninstall-hook: uninstall-sendmail-links
.PHONY: install-sendmail-links uninstall-sendmail-links install-submit-group
if SENDMAIL_LINKS
install-sendmail-links:
	@mx=`echo mxrelay | sed '$(transform)'`; \
	$(MKDIR_P) '$(DESTDIR)$(sbindir)' '$(DESTDIR)$(bindir)' || exit 1; \
	echo " ln -s $$mx '$(DESTDIR)$(sbindir)/sendmail'"; \
	rm -f '$(DESTDIR)$(sbindir)/sendmail' && \
	$(LN_S) "$$mx" '$(DESTDIR)$(sbindir)/sendmail' || exit 1; \
	from='$(bindir)'; to='$(sbindir)'; \
	case $$from$$to in *..*|*/./*) from=x;; esac; \
	case $$from:$$to in \
	/*:/*) \
	  c=$$from; up=; \
	  while test "$$c" != / && test "$$c" != "$$to"; do \
	    case $$to in "$$c"/*) break;; esac; \
	    c=`dirname "$$c"`; up=../$$up; \
	  done; \
	  if test "$$c" = "$$to"; then rest=; \
	  elif test "$$c" = /; then rest=$${to#/}/; \
	  else rest=$${to#"$$c"/}/; fi; \
	  target=$$up$$rest$$mx;; \
	*) target='$(sbindir)'/$$mx;; \
	esac; \
	echo " ln -s $$target '$(DESTDIR)$(bindir)/mailq'"; \
	rm -f '$(DESTDIR)$(bindir)/mailq' && \
	$(LN_S) "$$target" '$(DESTDIR)$(bindir)/mailq'
uninstall-sendmail-links:
	rm -f '$(DESTDIR)$(sbindir)/sendmail' '$(DESTDIR)$(bindir)/mailq'
else
install-sendmail-links:
uninstall-sendmail-links:
endif

# --with-submit-group=NAME: sbindir/mxrelay is setgid NAME (mode 2755), so
# that any local user can write into the spool's drop folder (1730,
# mxrelay:NAME).  Done here only by root installing into the live system
# (no DESTDIR) when the group exists: chgrp first, as chown clears the
# setgid bit.  Otherwise (a DESTDIR for a package, not root, no such group)
# it prints what the admin must run as root.  distcheck, as root in CI,
# may make a setgid binary in its own prefix: make uninstall removes it.
install-submit-group:
	@mx='$(sbindir)'/`echo mxrelay | sed '$(transform)'`; \
	grp='$(submitgroup)'; \
	if getent group "$$grp" > /dev/null 2>&1 || \
	   grep -q "^$$grp:" /etc/group 2> /dev/null; then \
	  have=yes; else have=no; fi; \
	if test -z '$(DESTDIR)' && test "`id -u`" = 0 && test $$have = yes; then \
	  echo " chgrp $$grp '$$mx' && chmod 2755 '$$mx'"; \
	  chgrp "$$grp" "$$mx" && chmod 2755 "$$mx"; \
	else \
	  echo "mxrelay must be setgid $$grp for local users to queue mail."; \
	  echo "As root, on the system that runs it, run:"; \
	  if test -n '$(DESTDIR)' || test $$have = no; then \
	    echo "  getent group $$grp > /dev/null || groupadd --system $$grp"; \
	  fi; \
	  echo "  chgrp $$grp '$$mx'"; \
	  echo "  chmod g+s '$$mx'"; \
	fi
