# tests/e2e/: real binaries, a real spool on disk, the test world on
# loopback (and network namespaces where a test makes its own).
check_PROGRAMS += tests/e2e/spoolcheck
tests_e2e_spoolcheck_SOURCES = tests/e2e/spoolcheck.c
tests_e2e_spoolcheck_LDADD = $(MX_LIBS) src/libmxlog.a $(NET_LIBS)

E2E_TESTS = tests/e2e/t_deb.sh tests/e2e/t_submit.sh tests/e2e/t_errors.sh tests/e2e/t_crash.sh \
	tests/e2e/t_delivery.sh tests/e2e/t_tls.sh tests/demo.sh \
	tests/e2e/t_install.sh tests/e2e/t_daemon.sh tests/e2e/t_smtpd.sh \
	tests/e2e/t_privs.sh tests/e2e/t_stranded.sh tests/e2e/t_bs.sh \
	tests/e2e/t_sched.sh tests/e2e/t_secrets.sh tests/e2e/t_limits.sh tests/e2e/t_oldenv.sh \
	tests/e2e/t_abuse.sh tests/e2e/t_auth.sh tests/e2e/t_relayauth.sh \
	tests/e2e/t_dsn.sh \
	tests/e2e/t_metrics.sh \
	tests/e2e/t_failover.sh \
	tests/e2e/t_json.sh \
	tests/e2e/t_admin.sh \
	tests/e2e/t_route.sh \
	tests/e2e/t_headers.sh \
	tests/e2e/t_smtputf8.sh \
	tests/e2e/t_fallback_utf8.sh tests/e2e/t_route_relayhosts.sh \
	tests/e2e/t_authfile.sh tests/e2e/t_route_fallback.sh \
	tests/e2e/t_dkim_keygen.sh \
	tests/e2e/t_dkim_spool.sh \
	tests/e2e/t_dkim.sh tests/e2e/t_dkim_drop.sh \
	tests/e2e/t_listen6.sh \
	tests/e2e/t_dane.sh tests/e2e/t_sts.sh \
	tests/e2e/t_oldspool.sh
TESTS += $(E2E_TESTS)
EXTRA_DIST += tests/e2e/lib.sh tests/e2e/world.sh tests/e2e/daemon.sh \
	tests/e2e/certs.sh tests/e2e/privs.sh tests/e2e/smtpclient.py \
	tests/e2e/abuse.py tests/e2e/authclient.py tests/e2e/jsoncheck.py \
	tests/e2e/utf8client.py \
	tests/e2e/dkim.sh tests/e2e/dkimcheck.py \
	tests/world/stsd.py \
	$(E2E_TESTS)
# A spool written by the release before msg/ (t_oldspool.sh).
EXTRA_DIST += tests/e2e/spool-v1/env/0661a58ced080f004012 \
	tests/e2e/spool-v1/env/0661a58cf0352d004027 \
	tests/e2e/spool-v1/env/0661a58cf0bb7d004029 \
	tests/e2e/spool-v1/data/0661a58ced080f004012 \
	tests/e2e/spool-v1/data/0661a58cf0352d004027 \
	tests/e2e/spool-v1/data/0661a58cf0bb7d004029
