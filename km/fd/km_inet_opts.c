/*
 * The socket options an inet socket's record keeps (km_inet.h): a fixed table, each option with
 * the sockets it applies to and the range of its value. Only options in the table are ever set at
 * resume, each within its range: the record is attacker input.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "km_inet.h"

enum {
	A_TCP = 1,     /* applies to TCP sockets */
	A_UDP = 2,     /* applies to UDP sockets */
	A_V4 = 4,      /* applies to AF_INET */
	A_V6 = 8,      /* applies to AF_INET6 */
	A_BOOL = 16,   /* read back as 0 or 1 */
	A_BUF = 32,    /* SO_RCVBUF/SO_SNDBUF: the kernel doubles what is set */
	A_LINGER = 64, /* struct linger */
};
#define A_BOTH (A_TCP | A_UDP)
#define A_ANYFAM (A_V4 | A_V6)

typedef struct optdef {
	int level, name;
	const char *label;
	unsigned flags;
	int32_t min, max;
	int force; /* A_BUF: the *BUFFORCE option a privileged km may use when the limit cuts it */
} optdef_t;

#define I32MAX 0x7fffffff
static const optdef_t defs[] = {
    {SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", A_BOTH | A_ANYFAM | A_BOOL, 0, 1, 0},
    {SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", A_BOTH | A_ANYFAM | A_BOOL, 0, 1, 0},
    {SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", A_TCP | A_ANYFAM | A_BOOL, 0, 1, 0},
    {SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST", A_UDP | A_ANYFAM | A_BOOL, 0, 1, 0},
    {SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", A_BOTH | A_ANYFAM | A_BUF, 0, I32MAX, SO_RCVBUFFORCE},
    {SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", A_BOTH | A_ANYFAM | A_BUF, 0, I32MAX, SO_SNDBUFFORCE},
    {SOL_SOCKET, SO_LINGER, "SO_LINGER", A_TCP | A_ANYFAM | A_LINGER, 0, I32MAX, 0},
    {SOL_SOCKET, SO_PRIORITY, "SO_PRIORITY", A_BOTH | A_ANYFAM, 0, I32MAX, 0},
    {SOL_SOCKET, SO_MARK, "SO_MARK", A_BOTH | A_ANYFAM, -I32MAX - 1, I32MAX, 0},
    {IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", A_TCP | A_ANYFAM | A_BOOL, 0, 1, 0},
    {IPPROTO_TCP, TCP_CORK, "TCP_CORK", A_TCP | A_ANYFAM | A_BOOL, 0, 1, 0},
    {IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", A_TCP | A_ANYFAM, 1, 32767, 0},
    {IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", A_TCP | A_ANYFAM, 1, 32767, 0},
    {IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", A_TCP | A_ANYFAM, 1, 127, 0},
    {IPPROTO_TCP, TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT", A_TCP | A_ANYFAM, 0, I32MAX, 0},
    {IPPROTO_TCP, TCP_FASTOPEN, "TCP_FASTOPEN", A_TCP | A_ANYFAM, 0, I32MAX, 0},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT", A_TCP | A_ANYFAM, 0, I32MAX, 0},
    {IPPROTO_IP, IP_TOS, "IP_TOS", A_BOTH | A_V4, 0, 255, 0},
    {IPPROTO_IP, IP_TTL, "IP_TTL", A_BOTH | A_V4, 1, 255, 0},
    {IPPROTO_IP, IP_FREEBIND, "IP_FREEBIND", A_BOTH | A_V4 | A_BOOL, 0, 1, 0},
    {IPPROTO_IP, IP_TRANSPARENT, "IP_TRANSPARENT", A_BOTH | A_V4 | A_BOOL, 0, 1, 0},
    {IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", A_BOTH | A_V6 | A_BOOL, 0, 1, 0},
    {IPPROTO_IPV6, IPV6_TCLASS, "IPV6_TCLASS", A_BOTH | A_V6, 0, 255, 0},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", A_BOTH | A_V6, 1, 255, 0},
    {IPPROTO_IPV6, IPV6_FREEBIND, "IPV6_FREEBIND", A_BOTH | A_V6 | A_BOOL, 0, 1, 0},
    {IPPROTO_IPV6, IPV6_TRANSPARENT, "IPV6_TRANSPARENT", A_BOTH | A_V6 | A_BOOL, 0, 1, 0},
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))
_Static_assert(NDEFS <= KM_INET_OPTS_MAX, "the record's option limit holds the table");

static bool applies(const optdef_t *d, const km_inet_t *s)
{
	unsigned proto = s->protocol == IPPROTO_TCP ? A_TCP : A_UDP;
	unsigned fam = s->family == AF_INET ? A_V4 : A_V6;
	return (d->flags & proto) && (d->flags & fam);
}

static const optdef_t *find(uint32_t level, uint32_t name)
{
	for (size_t i = 0; i < NDEFS; i++)
		if ((uint32_t)defs[i].level == level && (uint32_t)defs[i].name == name)
			return &defs[i];
	return NULL;
}

/* The option's current value on fd (linger: onoff in v, seconds in v2). */
static int read_opt(int fd, const optdef_t *d, int32_t *v, int32_t *v2)
{
	if (d->flags & A_LINGER) {
		struct linger l = {0};
		socklen_t n = sizeof(l);
		if (getsockopt(fd, d->level, d->name, &l, &n) < 0)
			return -1;
		*v = l.l_onoff != 0;
		*v2 = l.l_linger;
		return 0;
	}
	int x = 0;
	socklen_t n = sizeof(x);
	if (getsockopt(fd, d->level, d->name, &x, &n) < 0)
		return -1;
	*v = (d->flags & A_BOOL) ? x != 0 : x;
	*v2 = 0;
	return 0;
}

int km_inet_opts_save(int fd, km_inet_t *s, km_err_t **err)
{
	s->nopts = 0;
	for (size_t i = 0; i < NDEFS; i++) {
		const optdef_t *d = &defs[i];
		int32_t v, v2;
		if (!applies(d, s))
			continue;
		if (read_opt(fd, d, &v, &v2) < 0) {
			if (errno == ENOPROTOOPT) /* a kernel without it: nothing was set */
				continue;
			return km_err_set(err, errno, "reading %s", d->label);
		}
		s->opts[s->nopts++] = (km_inet_opt_t){(uint32_t)d->level, (uint32_t)d->name, v, v2};
	}
	return 0;
}

int km_inet_opts_check(const km_inet_t *s, km_err_t **err)
{
	if (s->nopts > NDEFS)
		return km_err_set(err, 0, "corrupt record: %u socket options", s->nopts);
	for (uint32_t i = 0; i < s->nopts; i++) {
		const km_inet_opt_t *o = &s->opts[i];
		const optdef_t *d = find(o->level, o->name);
		if (d == NULL || !applies(d, s))
			return km_err_set(err, 0, "corrupt record: socket option %u/%u is not one km restores here",
					  o->level, o->name);
		if (o->val < d->min || o->val > d->max)
			return km_err_set(err, 0, "corrupt record: %s = %d is out of range", d->label, o->val);
		if ((d->flags & A_LINGER) ? (o->val2 < 0) : (o->val2 != 0))
			return km_err_set(err, 0, "corrupt record: %s has a bad second value", d->label);
		for (uint32_t k = 0; k < i; k++)
			if (s->opts[k].level == o->level && s->opts[k].name == o->name)
				return km_err_set(err, 0, "corrupt record: %s given twice", d->label);
	}
	return 0;
}

int km_inet_opt_get(const km_inet_t *s, uint32_t level, uint32_t name, int dflt)
{
	for (uint32_t i = 0; i < s->nopts; i++)
		if (s->opts[i].level == level && s->opts[i].name == name)
			return s->opts[i].val;
	return dflt;
}

/* Buffer sizes read back doubled: set half, and if the host's limit (net.core.[rw]mem_max) cut
 * it, the forcing variant (CAP_NET_ADMIN). A size that still differs is left as the host allows:
 * a buffer's size changes no behaviour a program relies on. */
static void set_buf(int fd, const optdef_t *d, int32_t want)
{
	int half = want / 2, got = 0;
	socklen_t n = sizeof(got);
	if (setsockopt(fd, d->level, d->name, &half, sizeof(half)) == 0 &&
	    getsockopt(fd, d->level, d->name, &got, &n) == 0 && got == want)
		return;
	(void)setsockopt(fd, d->level, d->force, &half, sizeof(half));
}

static int set_one(int fd, const optdef_t *d, const km_inet_opt_t *o, km_err_t **err)
{
	int32_t cur, cur2;
	/* Only what differs from a new socket's value: an option left at its default then never
	 * needs a privilege to be "set" again (IP_TRANSPARENT 0, SO_PRIORITY 0). */
	if (read_opt(fd, d, &cur, &cur2) == 0 && cur == o->val && cur2 == o->val2)
		return 0;
	if (d->flags & A_BUF) {
		set_buf(fd, d, o->val);
		return 0;
	}
	int rc;
	if (d->flags & A_LINGER) {
		struct linger l = {.l_onoff = o->val, .l_linger = o->val2};
		rc = setsockopt(fd, d->level, d->name, &l, sizeof(l));
	} else {
		int x = o->val;
		rc = setsockopt(fd, d->level, d->name, &x, sizeof(x));
	}
	if (rc < 0)
		return km_err_set(err, errno, "setting %s to %d", d->label, o->val);
	return 0;
}

int km_inet_opts_apply(int fd, const km_inet_t *s, bool skip_reuseaddr, km_err_t **err)
{
	for (uint32_t i = 0; i < s->nopts; i++) {
		const km_inet_opt_t *o = &s->opts[i];
		const optdef_t *d = find(o->level, o->name);
		if (d == NULL) /* checked before */
			continue;
		if (skip_reuseaddr && d->level == SOL_SOCKET && d->name == SO_REUSEADDR)
			continue;
		if (set_one(fd, d, o, err) < 0)
			return -1;
	}
	return 0;
}
