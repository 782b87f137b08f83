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
	    $(srcdir)/etc/mxrelayd.service.in > $@.tmp && \
	if grep '@[a-z_]*@' $@.tmp >&2; then \
	  echo "$@: unsubstituted variable" >&2; rm -f $@.tmp; exit 1; \
	fi && mv $@.tmp $@

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
install-exec-hook: install-sendmail-links
uninstall-hook: uninstall-sendmail-links
.PHONY: install-sendmail-links uninstall-sendmail-links
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
