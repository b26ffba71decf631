/*
 * The network lock (km_netlock.h): nf_tables spoken over NETLINK_NETFILTER. One transaction
 * (a batch: begin, messages, end; all or nothing) creates table inet km_lock_<pid> with a chain
 * on the input hook and one drop rule per connection; another deletes the table. The rule, as
 * nft would write it: `meta nfproto ipv4 meta l4proto tcp ip saddr PEER ip daddr LOCAL
 * tcp sport PEERPORT tcp dport LOCALPORT drop` (ip6 for IPv6; a v4-mapped IPv6 connection
 * travels as IPv4 and is matched so). Incoming segments only: with them dropped before TCP sees
 * them, the host has nothing to answer, so no output rule is needed.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include "km_buf.h"
#include "km_netlock.h"
#include "km_sys_util.h"

#define CHAIN "input"

/* --- building messages ---------------------------------------------------------------------- */

static size_t align4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* Starts a message of type `type` (an nf_tables one, or a batch marker) for family; returns its
 * offset in b, for msg_end. */
static size_t msg_begin(km_buf_t *b, uint16_t type, uint16_t flags, uint8_t family, uint32_t seq)
{
	size_t at = b->len;
	struct nlmsghdr *h = km_buf_reserve(b, NLMSG_HDRLEN + align4(sizeof(struct nfgenmsg)));
	if (h == NULL)
		return at;
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | flags;
	h->nlmsg_seq = seq;
	struct nfgenmsg *g = (struct nfgenmsg *)((uint8_t *)h + NLMSG_HDRLEN);
	g->nfgen_family = family;
	g->version = NFNETLINK_V0;
	g->res_id = htons(NFNL_SUBSYS_NFTABLES);
	return at;
}

static void msg_end(km_buf_t *b, size_t at)
{
	if (!b->failed)
		((struct nlmsghdr *)(b->p + at))->nlmsg_len = (uint32_t)(b->len - at);
}

static void put_attr(km_buf_t *b, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = km_buf_reserve(b, NLA_HDRLEN + align4(len));
	if (a == NULL)
		return;
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	memcpy((uint8_t *)a + NLA_HDRLEN, data, len);
}

static void put_str(km_buf_t *b, uint16_t type, const char *s)
{
	put_attr(b, type, s, strlen(s) + 1);
}

static void put_be32(km_buf_t *b, uint16_t type, uint32_t v)
{
	v = htonl(v);
	put_attr(b, type, &v, sizeof(v));
}

static size_t nest_begin(km_buf_t *b, uint16_t type)
{
	size_t at = b->len;
	struct nlattr *a = km_buf_reserve(b, NLA_HDRLEN);
	if (a != NULL)
		a->nla_type = type | NLA_F_NESTED;
	return at;
}

static void nest_end(km_buf_t *b, size_t at)
{
	if (!b->failed)
		((struct nlattr *)(b->p + at))->nla_len = (uint16_t)(b->len - at);
}

/* One expression of a rule: its name and its data's attributes (added by the caller). */
static size_t expr_begin(km_buf_t *b, const char *name, size_t *data)
{
	size_t elem = nest_begin(b, NFTA_LIST_ELEM);
	put_str(b, NFTA_EXPR_NAME, name);
	*data = nest_begin(b, NFTA_EXPR_DATA);
	return elem;
}

static void expr_end(km_buf_t *b, size_t elem, size_t data)
{
	nest_end(b, data);
	nest_end(b, elem);
}

/* reg1 == value (len bytes) or the rule stops here. */
static void cmp_eq(km_buf_t *b, const void *value, uint32_t len)
{
	size_t d, e = expr_begin(b, "cmp", &d);
	put_be32(b, NFTA_CMP_SREG, NFT_REG_1);
	put_be32(b, NFTA_CMP_OP, NFT_CMP_EQ);
	size_t v = nest_begin(b, NFTA_CMP_DATA);
	put_attr(b, NFTA_DATA_VALUE, value, len);
	nest_end(b, v);
	expr_end(b, e, d);
}

static void meta_eq(km_buf_t *b, uint32_t key, uint8_t value)
{
	size_t d, e = expr_begin(b, "meta", &d);
	put_be32(b, NFTA_META_DREG, NFT_REG_1);
	put_be32(b, NFTA_META_KEY, key);
	expr_end(b, e, d);
	cmp_eq(b, &value, 1);
}

static void payload_eq(km_buf_t *b, uint32_t base, uint32_t off, const void *value, uint32_t len)
{
	size_t d, e = expr_begin(b, "payload", &d);
	put_be32(b, NFTA_PAYLOAD_DREG, NFT_REG_1);
	put_be32(b, NFTA_PAYLOAD_BASE, base);
	put_be32(b, NFTA_PAYLOAD_OFFSET, off);
	put_be32(b, NFTA_PAYLOAD_LEN, len);
	expr_end(b, e, d);
	cmp_eq(b, value, len);
}

static void verdict_drop(km_buf_t *b)
{
	size_t d, e = expr_begin(b, "immediate", &d);
	put_be32(b, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
	size_t data = nest_begin(b, NFTA_IMMEDIATE_DATA);
	size_t v = nest_begin(b, NFTA_DATA_VERDICT);
	put_be32(b, NFTA_VERDICT_CODE, NF_DROP);
	nest_end(b, v);
	nest_end(b, data);
	expr_end(b, e, d);
}

/* --- talking to nf_tables -------------------------------------------------------------------- */

/* Sends the batch in b (its `acks` messages asked for one) and reads the answers: 0, or -errno
 * of the first message the kernel refused (the whole batch is then undone). */
static int transact(km_buf_t *b, int acks)
{
	if (b->failed)
		return -ENOMEM;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return -errno;
	/* an answer that never comes must not hang the snapshot or the resume */
	struct timeval tv = {.tv_sec = 5};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* a batch goes in one send, and hundreds of rules outgrow the default buffer (wmem_default):
	 * CAP_NET_ADMIN, which the repaired connections needed, lets km grow it */
	int sndbuf = b->len > INT32_MAX / 2 ? INT32_MAX / 2 : (int)b->len + 4096;
	if (b->len > 65536)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	int rc = 0;
	if (sendto(fd, b->p, b->len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) != (ssize_t)b->len)
		rc = -errno;
	uint8_t buf[8192] __attribute__((aligned(4)));
	while (rc == 0 && acks > 0) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
			break;
		}
		uint32_t len = (uint32_t)n; /* NLMSG_OK compares it with the unsigned nlmsg_len */
		for (struct nlmsghdr *h = (void *)buf; rc == 0 && NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *e = NLMSG_DATA(h);
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				rc = -EPROTO;
			else if (e->error != 0)
				rc = e->error;
			else
				acks--;
		}
	}
	close(fd);
	return rc;
}

void km_netlock_name(char *buf, size_t size)
{
	snprintf(buf, size, KM_NETLOCK_PREFIX "%d", (int)getpid());
}

bool km_netlock_name_ok(const char *name)
{
	size_t plen = strlen(KM_NETLOCK_PREFIX), n = strlen(name);
	if (n <= plen || n >= 32 + plen || strncmp(name, KM_NETLOCK_PREFIX, plen) != 0)
		return false;
	for (size_t i = plen; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_')
			return false;
	return true;
}

int km_netlock_remove(const char *name, km_err_t **err)
{
	/* every established connection of a resume names the same table: one transaction (each
	 * costs tens of milliseconds here) does for all */
	static char removed[KM_INET_LOCK_MAX];
	if (!km_netlock_name_ok(name))
		return km_err_set(err, 0, "'%s' is not a km lock table", name);
	if (strcmp(name, removed) == 0)
		return 0;
	km_buf_t b = {0};
	msg_end(&b, msg_begin(&b, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, 1));
	size_t m = msg_begin(&b, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELTABLE, NLM_F_ACK, NFPROTO_INET, 2);
	put_str(&b, NFTA_TABLE_NAME, name);
	msg_end(&b, m);
	msg_end(&b, msg_begin(&b, NFNL_MSG_BATCH_END, 0, AF_UNSPEC, 3));
	int rc = transact(&b, 1);
	km_buf_free(&b);
	if (rc == -ENOENT)
		rc = 0; /* never installed (a keep-running snapshot, a lock that failed), or gone */
	if (rc < 0)
		return km_err_set(err, -rc, "deleting nf_tables table inet %s", name);
	snprintf(removed, sizeof(removed), "%s", name);
	return 0;
}

/* --- the save's lock ------------------------------------------------------------------------- */

typedef struct conn {
	bool inside;            /* both ends are the program's: no live peer to hold off */
	uint8_t nfproto;        /* NFPROTO_IPV4 or _IPV6: how the segments travel */
	uint8_t peer[16], local[16];
	uint16_t ports[2];      /* peer's, then ours: tcp sport and dport of an incoming segment */
} conn_t;

typedef struct lock {
	char name[KM_INET_LOCK_MAX];
	conn_t *conns;
	uint32_t n;
	bool ends;     /* km ends the program once the file is written: each rule goes on at once */
	bool tried;    /* a rule was sent */
	int rc;        /* the first failure to install, 0 if none */
} lock_t;

static void one_rule(km_buf_t *b, const lock_t *l, const conn_t *c, uint32_t seq, uint16_t ack)
{
	bool v4 = c->nfproto == NFPROTO_IPV4;
	size_t m = msg_begin(b, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | ack,
			     NFPROTO_INET, seq);
	put_str(b, NFTA_RULE_TABLE, l->name);
	put_str(b, NFTA_RULE_CHAIN, CHAIN);
	size_t x = nest_begin(b, NFTA_RULE_EXPRESSIONS);
	meta_eq(b, NFT_META_NFPROTO, c->nfproto);
	meta_eq(b, NFT_META_L4PROTO, IPPROTO_TCP);
	payload_eq(b, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 12 : 8, c->peer, v4 ? 4 : 16);
	payload_eq(b, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, c->local, v4 ? 4 : 16);
	payload_eq(b, NFT_PAYLOAD_TRANSPORT_HEADER, 0, c->ports, 4);
	verdict_drop(b);
	nest_end(b, x);
	msg_end(b, m);
}

/* The table, its input chain (both kept if they exist) and the rules of l's connections from
 * `first` on, in one transaction. Only the last message asks for an acknowledgement (a refused
 * one is answered anyway, before it): thousands of acks would overflow the receive buffer. */
static int install(const lock_t *l, uint32_t first)
{
	km_buf_t b = {0};
	uint32_t seq = 1;
	msg_end(&b, msg_begin(&b, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, seq++));
	size_t m = msg_begin(&b, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE, NLM_F_CREATE, NFPROTO_INET, seq++);
	put_str(&b, NFTA_TABLE_NAME, l->name);
	put_be32(&b, NFTA_TABLE_FLAGS, 0);
	msg_end(&b, m);
	m = msg_begin(&b, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWCHAIN, NLM_F_CREATE, NFPROTO_INET, seq++);
	put_str(&b, NFTA_CHAIN_TABLE, l->name);
	put_str(&b, NFTA_CHAIN_NAME, CHAIN);
	size_t h = nest_begin(&b, NFTA_CHAIN_HOOK);
	put_be32(&b, NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_IN);
	put_be32(&b, NFTA_HOOK_PRIORITY, 0);
	nest_end(&b, h);
	put_str(&b, NFTA_CHAIN_TYPE, "filter");
	put_be32(&b, NFTA_CHAIN_POLICY, NF_ACCEPT);
	msg_end(&b, m);
	uint32_t last = l->n;
	while (last > 0 && l->conns[last - 1].inside)
		last--;
	for (uint32_t i = first; i < last; i++)
		if (!l->conns[i].inside)
			one_rule(&b, l, &l->conns[i], seq++, i + 1 == last ? NLM_F_ACK : 0);
	msg_end(&b, msg_begin(&b, NFNL_MSG_BATCH_END, 0, AF_UNSPEC, seq++));
	int rc = transact(&b, 1);
	km_buf_free(&b);
	return rc;
}

static bool mirrors(const conn_t *a, const conn_t *b)
{
	return a->nfproto == b->nfproto && memcmp(a->peer, b->local, 16) == 0 && memcmp(a->local, b->peer, 16) == 0 &&
	       a->ports[0] == b->ports[1] && a->ports[1] == b->ports[0];
}

/* Marks the connections whose other end is in the program too (over loopback): both sockets
 * vanish silently with km and nothing else sends on them, so they need no rule. True if some
 * connection has a peer outside. */
static bool mark_inside(lock_t *l)
{
	bool outside = false;
	for (uint32_t i = 0; i < l->n; i++) {
		for (uint32_t j = 0; j < l->n && !l->conns[i].inside; j++)
			l->conns[i].inside = j != i && mirrors(&l->conns[i], &l->conns[j]);
		outside |= !l->conns[i].inside;
	}
	return outside;
}

/* When km ends the program, each connection's rule went on before its queues were read (a
 * segment arriving while the file is written would be acknowledged by the host, then lost with
 * the socket); the lock stays for the resume, unless the program goes on after all (a failed
 * snapshot) or no connection has a peer outside it (both ends vanish with km). */
static void release(void *arg, bool guest_goes_on)
{
	lock_t *l = arg;
	int rc = l->rc;
	if (l->tried && guest_goes_on) {
		km_err_t *e = NULL;
		if (km_netlock_remove(l->name, &e) < 0) {
			fprintf(stderr, "km: warning: removing the network lock %s: %s\n", l->name, e->msg);
			km_err_free(&e);
		}
	}
	if (guest_goes_on)
		rc = 0;
	if (rc < 0)
		fprintf(stderr,
			"km: warning: the snapshot's %u established TCP connections are not locked until the resume "
			"(creating nf_tables table inet %s: %s): a segment a peer sends before then resets its "
			"connection\n",
			l->n, l->name, strerror(-rc));
	free(l->conns);
	free(l);
}

/* The addresses as an incoming segment carries them. */
static void fill_conn(conn_t *c, const km_inet_t *s)
{
	memset(c, 0, sizeof(*c));
	if (s->family == AF_INET) {
		const struct sockaddr_in *p = (const void *)&s->peer, *l = (const void *)&s->local;
		c->nfproto = NFPROTO_IPV4;
		memcpy(c->peer, &p->sin_addr, 4);
		memcpy(c->local, &l->sin_addr, 4);
		c->ports[0] = p->sin_port;
		c->ports[1] = l->sin_port;
		return;
	}
	const struct sockaddr_in6 *p = (const void *)&s->peer, *l = (const void *)&s->local;
	bool mapped = IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) && IN6_IS_ADDR_V4MAPPED(&l->sin6_addr);
	c->nfproto = mapped ? NFPROTO_IPV4 : NFPROTO_IPV6;
	memcpy(c->peer, mapped ? &p->sin6_addr.s6_addr[12] : p->sin6_addr.s6_addr, mapped ? 4 : 16);
	memcpy(c->local, mapped ? &l->sin6_addr.s6_addr[12] : l->sin6_addr.s6_addr, mapped ? 4 : 16);
	c->ports[0] = p->sin6_port;
	c->ports[1] = l->sin6_port;
}

static bool same_conn(const conn_t *a, const conn_t *b)
{
	return a->nfproto == b->nfproto && memcmp(a->peer, b->peer, 16) == 0 && memcmp(a->local, b->local, 16) == 0 &&
	       memcmp(a->ports, b->ports, sizeof(a->ports)) == 0;
}

/* The established TCP connection guest fd holds, if it is one, into c. */
static bool established(int fd, conn_t *c)
{
	int dom = 0, proto = 0;
	socklen_t len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0 || (dom != AF_INET && dom != AF_INET6))
		return false;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 || proto != IPPROTO_TCP)
		return false;
	struct tcp_info ti;
	len = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || ti.tcpi_state != TCP_ESTABLISHED)
		return false;
	km_inet_t *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return false;
	s->family = (uint32_t)dom;
	socklen_t ll = sizeof(s->local), pl = sizeof(s->peer);
	bool ok = getsockname(fd, (struct sockaddr *)&s->local, &ll) == 0 &&
		  getpeername(fd, (struct sockaddr *)&s->peer, &pl) == 0;
	if (ok)
		fill_conn(c, s);
	free(s);
	return ok;
}

/* Every established TCP connection of the program, once per save: the lock for all of them goes
 * on in one transaction before the first one's queues are read (the guest is stopped: the set
 * cannot change meanwhile). */
static int prescan(lock_t *l)
{
	for (int fd = 0; fd < KM_FD_RESERVED_BASE; fd++) {
		conn_t c;
		if (!established(fd, &c))
			continue;
		bool dup = false;
		for (uint32_t i = 0; i < l->n && !dup; i++)
			dup = same_conn(&l->conns[i], &c);
		if (dup)
			continue; /* a dup of a socket already seen */
		conn_t *n = realloc(l->conns, (l->n + 1) * sizeof(*n));
		if (n == NULL)
			return -ENOMEM;
		l->conns = n;
		l->conns[l->n++] = c;
	}
	return 0;
}

void km_netlock_held(km_fdsave_t *sv, char *buf, size_t size)
{
	const lock_t *l = *km_fdsave_state(sv, KM_FDK_INET);
	bool held = l != NULL && l->tried && l->rc == 0;
	snprintf(buf, size, "%s", held ? l->name : "");
}

int km_netlock_cover(km_fdsave_t *sv, km_err_t **err)
{
	void **slot = km_fdsave_state(sv, KM_FDK_INET);
	if (*slot == NULL) {
		lock_t *l = calloc(1, sizeof(*l));
		if (l == NULL)
			return km_err_set(err, ENOMEM, "saving a connection");
		km_netlock_name(l->name, sizeof(l->name));
		l->ends = km_fdsave_ends(sv);
		if (km_fdsave_on_release(sv, release, l, err) < 0)
			return -1; /* l is freed already */
		*slot = l;
		/* before repair mode reads the first connection's queues */
		if (l->ends && (l->rc = prescan(l)) == 0 && mark_inside(l)) {
			l->tried = true;
			l->rc = install(l, 0);
		}
	}
	return 0;
}
