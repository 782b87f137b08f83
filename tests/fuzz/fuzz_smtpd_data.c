/*
 * fuzz_smtpd_data: the listener's DATA decoder (smtp_unstuff_feed() in
 * src/smtp_proto.c) on what a client sends after the 354, cut into
 * pieces that the fuzzer chooses, as TCP and TLS records may cut it.
 *
 * Input: octet 0 the options: bit 0 SMTP_UNSTUFF_LF (bare_lf =
 * normalize), bits 1-2 the line limit (1000 or a short one), bits 3-5
 * the output room of each call (all it may need, or 2 to 64 octets).
 * Octet 1 mod 9 is a count k of split octets that follow, each the size
 * of one piece (0 feeds an empty piece), used in turn; the rest is the
 * data.
 *
 * The decoder must keep its promises whatever the cut:
 *  - the pieces give the same status, the same first violation, the same
 *    end position and the same output bytes as the whole data in one
 *    call, and that one call with 2 * len octets of room (len + 1 without
 *    SMTP_UNSTUFF_LF) takes everything up to the end;
 *  - the end is the first CRLF "." CRLF (or "." CRLF at the start), and
 *    nothing after it is taken or written; after the end a call returns
 *    the same status and takes nothing;
 *  - with SMTP_UNSTUFF_LF, a bare LF is never a violation;
 *  - the output never holds a bare CR or a bare LF;
 *  - the status, the violation and (when there is none) the output agree
 *    with a separate line-by-line model of the rules in smtp_proto.h.
 * Each call writes into a heap buffer of exactly its room, so that ASan
 * sees a write past it.
 *
 * make check replays tests/fuzz/corpus/smtpd_data (run-data.sh).
 * libFuzzer build: CC=clang ./configure --enable-fuzzing; make fuzz
 * (tests/fuzz/local.mk) gives tests/fuzz/lf/fuzz_smtpd_data, to run as
 *   tests/fuzz/lf/fuzz_smtpd_data -max_len=4096 NEW_DIR \
 *       tests/fuzz/corpus/smtpd_data
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define NONE	SIZE_MAX

static const size_t line_maxes[] = { 1000, 3, 5, 12 };
static const size_t rooms[] = { 0, 2, 3, 4, 5, 8, 17, 64 };	/* 0: all */

/* What a run of the decoder gave. */
struct run {
	enum smtp_unstuff_status st;
	enum smtp_unstuff_status err;	/* u.err at the end */
	size_t	 used;
	size_t	 olen;
	char	*out;
};

/* What the model says. */
struct want {
	size_t	 end;		/* octets up to the end of data; NONE */
	enum smtp_unstuff_status err;	/* first violation, or MORE */
};

static void	*xmalloc0(size_t);
static void	 run_whole(const char *, size_t, unsigned, size_t,
		    struct run *);
static void	 run_pieces(const char *, size_t, unsigned, size_t,
		    const uint8_t *, size_t, size_t, struct run *);
static void	 after_end(struct smtp_unstuff *, enum smtp_unstuff_status);
static size_t	 find_end(const char *, size_t);
static void	 model(const char *, size_t, unsigned, size_t, struct want *);
static size_t	 model_output(const char *, size_t, unsigned, char *);
static void	 check_output(const char *, size_t);

static void *
xmalloc0(size_t n)
{
	void *p;

	if ((p = calloc(1, n == 0 ? 1 : n)) == NULL)
		abort();
	return p;
}

/* The whole data in one call, with the room the header promises. */
static void
run_whole(const char *d, size_t len, unsigned flags, size_t line_max,
    struct run *r)
{
	struct smtp_unstuff u;
	size_t room = (flags & SMTP_UNSTUFF_LF) ? 2 * len : len + 1;

	r->out = xmalloc0(room);
	smtp_unstuff_init(&u, line_max, flags);
	r->st = smtp_unstuff_feed(&u, d, len, &r->used, r->out, room,
	    &r->olen);
	if (r->used > len || r->olen > room)
		abort();
	if (r->st == SMTP_UNSTUFF_MORE && r->used != len)
		abort();	/* the room was enough: all must be taken */
	r->err = u.err;
	if (r->st != SMTP_UNSTUFF_MORE)
		after_end(&u, r->st);
}

/*
 * The data in pieces of the sizes in split[0..nsplit) (in turn), each
 * call with at most maxroom octets of room (0: as much as the piece may
 * need).
 */
static void
run_pieces(const char *d, size_t len, unsigned flags, size_t line_max,
    const uint8_t *split, size_t nsplit, size_t maxroom, struct run *r)
{
	struct smtp_unstuff u;
	enum smtp_unstuff_status st = SMTP_UNSTUFF_MORE;
	size_t pos = 0, o = 0, k = 0, zeros = 0;
	char *room_buf;

	r->out = xmalloc0(2 * len + 1);
	smtp_unstuff_init(&u, line_max, flags);
	while (st == SMTP_UNSTUFF_MORE && (pos < len || k == 0)) {
		size_t piece = nsplit > 0 ? split[k % nsplit] : len - pos;

		k++;
		/* Empty pieces are fed, but a cycle of them ends it. */
		if (piece == 0 && ++zeros > nsplit)
			piece = len - pos;
		if (piece != 0)
			zeros = 0;
		if (piece > len - pos)
			piece = len - pos;
		do {
			size_t room, used, w;

			room = maxroom != 0 ? maxroom : 2 * piece + 1;
			room_buf = xmalloc0(room);
			st = smtp_unstuff_feed(&u, d + pos, piece, &used,
			    room_buf, room, &w);
			if (used > piece || w > room || o + w > 2 * len + 1)
				abort();
			memcpy(r->out + o, room_buf, w);
			free(room_buf);
			/* MORE with input left: the room must be full. */
			if (st == SMTP_UNSTUFF_MORE && used < piece &&
			    room - w >= 2)
				abort();
			if (piece > 0 && used == 0 && w == 0 &&
			    st == SMTP_UNSTUFF_MORE)
				abort();	/* no progress */
			pos += used;
			o += w;
			piece -= used;
		} while (st == SMTP_UNSTUFF_MORE && piece > 0);
		if (len == 0)
			break;
	}
	r->st = st;
	r->err = u.err;
	r->used = pos;
	r->olen = o;
	if (st != SMTP_UNSTUFF_MORE)
		after_end(&u, st);
}

/* After the end: the same status, nothing taken, nothing written. */
static void
after_end(struct smtp_unstuff *u, enum smtp_unstuff_status st)
{
	static const char more[] = "x\r\n.\r\n";
	char out[16];
	size_t used = 99, w = 99;

	if (smtp_unstuff_feed(u, more, sizeof(more) - 1, &used, out,
	    sizeof(out), &w) != st || used != 0 || w != 0)
		abort();
}

/* Octets up to and including the first CRLF "." CRLF; NONE if none. */
static size_t
find_end(const char *d, size_t len)
{
	if (len >= 3 && memcmp(d, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= len; i++)
		if (memcmp(d + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return NONE;
}

/*
 * The rules of smtp_proto.h, one octet at a time but without the
 * decoder's state machine: each violation is found where the decoder can
 * first see it (a bare CR at the octet after it), the earliest wins, and
 * at one octet a bare CR comes before a NUL, a NUL before a long line.
 */
static void
model(const char *d, size_t len, unsigned flags, size_t line_max,
    struct want *w)
{
	bool lf = (flags & SMTP_UNSTUFF_LF) != 0;
	size_t scan, col = 0;

	w->end = find_end(d, len);
	w->err = SMTP_UNSTUFF_MORE;
	scan = w->end != NONE ? w->end : len;
	for (size_t i = 0; i < scan && w->err == SMTP_UNSTUFF_MORE; i++) {
		char c = d[i];

		if (i > 0 && d[i - 1] == '\r' && c != '\n') {
			w->err = SMTP_UNSTUFF_BARE_CR;
			break;
		}
		if (c == '\r')
			continue;
		if (c == '\n') {
			if (i > 0 && d[i - 1] == '\r')
				col = 0;	/* CRLF */
			else if (lf)
				col = 0;	/* a bare LF ends the line */
			else
				w->err = SMTP_UNSTUFF_BARE_LF;
			continue;
		}
		if (c == '\0') {
			w->err = SMTP_UNSTUFF_NUL;
			break;
		}
		if (++col > line_max - 2)
			w->err = SMTP_UNSTUFF_LONG_LINE;
	}
}

/*
 * The output when there is no violation: the lines of d[0..len) (CRLF
 * ends them, and a bare LF with SMTP_UNSTUFF_LF), each without its first
 * '.', with CRLF; the last, unended one as it is, without a CR held at
 * the very end.  Returns the length written to out (2 * len is enough).
 */
static size_t
model_output(const char *d, size_t len, unsigned flags, char *out)
{
	size_t o = 0, start = 0, i;

	if (len > 0 && d[len - 1] == '\r')
		len--;
	for (i = 0; i <= len; i++) {
		bool eol = i < len && d[i] == '\n';
		size_t n;

		if (!eol && i < len)
			continue;
		/* d[start..i) is a line; a CR before the LF is its CRLF. */
		n = i - start;
		if (eol && n > 0 && d[i - 1] == '\r')
			n--;
		else if (eol && !(flags & SMTP_UNSTUFF_LF))
			abort();	/* a bare LF is a violation */
		if (n > 0 && d[start] == '.') {
			start++;
			n--;
		}
		memcpy(out + o, d + start, n);
		o += n;
		if (eol) {
			memcpy(out + o, "\r\n", 2);
			o += 2;
		}
		start = i + 1;
	}
	return o;
}

/* No bare CR, no bare LF. */
static void
check_output(const char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (out[i] == '\r' && (i + 1 == n || out[i + 1] != '\n'))
			abort();
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, cut;
	struct want w;
	const uint8_t *split;
	size_t nsplit, len, line_max, maxroom;
	unsigned flags;
	char *d;

	if (size < 2)
		return 0;
	flags = (data[0] & 1) ? SMTP_UNSTUFF_LF : 0;
	line_max = line_maxes[(data[0] >> 1) & 3];
	maxroom = rooms[(data[0] >> 3) & 7];
	nsplit = data[1] % 9;
	if (size < 2 + nsplit)
		return 0;
	split = data + 2;
	len = size - 2 - nsplit;
	/* An exact copy: ASan sees a read past the data. */
	d = xmalloc0(len);
	memcpy(d, data + 2 + nsplit, len);

	run_whole(d, len, flags, line_max, &whole);
	run_pieces(d, len, flags, line_max, split, nsplit, maxroom, &cut);

	/* The cut changes nothing. */
	if (cut.st != whole.st || cut.err != whole.err ||
	    cut.used != whole.used || cut.olen != whole.olen ||
	    memcmp(cut.out, whole.out, whole.olen) != 0)
		abort();

	/* The model agrees. */
	model(d, len, flags, line_max, &w);
	if (w.end != NONE) {
		if (whole.used != w.end || whole.st != (w.err ==
		    SMTP_UNSTUFF_MORE ? SMTP_UNSTUFF_END : w.err))
			abort();
	} else if (whole.st != SMTP_UNSTUFF_MORE || whole.used != len)
		abort();
	if (whole.err != w.err)
		abort();
	if ((flags & SMTP_UNSTUFF_LF) && whole.err == SMTP_UNSTUFF_BARE_LF)
		abort();
	if (w.err == SMTP_UNSTUFF_MORE) {
		char *want = xmalloc0(2 * len + 1);
		size_t body = w.end == NONE ? len : w.end - 3;
		size_t n = model_output(d, body, flags, want);

		if (n != whole.olen || memcmp(want, whole.out, n) != 0)
			abort();
		free(want);
	}
	check_output(whole.out, whole.olen);
	if (whole.olen > 2 * whole.used)
		abort();

	free(whole.out);
	free(cut.out);
	free(d);
	return 0;
}
