# src/smtpc.mk: SMTP protocol helpers, SMTP client and the test SMTP server.
