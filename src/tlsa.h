/*
 * tlsa: one TLSA record (RFC 6698 §2.1), as dns.c reads it from an
 * answer and io.c hands it to OpenSSL's DANE verifier.  Data only.
 */
#ifndef MXRELAY_TLSA_H
#define MXRELAY_TLSA_H

#include <stddef.h>
#include <stdint.h>

struct tlsa_rr {
	uint8_t			 usage;		/* 0..3; DANE for SMTP uses 2, 3 */
	uint8_t			 selector;	/* 0 full certificate, 1 SPKI */
	uint8_t			 mtype;		/* 0 full, 1 SHA2-256, 2 SHA2-512 */
	const unsigned char	*data;
	size_t			 len;
};

#endif
