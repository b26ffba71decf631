/* NETLINK_SOCK_DIAG queries about one unix socket (km_sockdiag.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include "km_sockdiag.h"

#define DIAG_NOCOOKIE (~0u)

typedef struct diag_req {
	struct nlmsghdr nh;
	struct unix_diag_req r;
} diag_req_t;

static void parse_attrs(const struct unix_diag_msg *m, size_t len, km_unix_diag_t *d)
{
	const struct rtattr *a = (const struct rtattr *)(m + 1);
	size_t left = len - NLMSG_ALIGN(sizeof(*m));
	for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
		size_t n = RTA_PAYLOAD(a);
		const void *v = RTA_DATA(a);
		if (a->rta_type == UNIX_DIAG_PEER && n >= sizeof(uint32_t)) {
			uint32_t ino;
			memcpy(&ino, v, sizeof(ino));
			d->peer_ino = ino;
		} else if (a->rta_type == UNIX_DIAG_SHUTDOWN && n >= 1) {
			d->has_shutdown = true;
			d->shutdown = *(const uint8_t *)v;
		} else if (a->rta_type == UNIX_DIAG_ICONS) {
			for (size_t k = 0; k + sizeof(uint32_t) <= n; k += sizeof(uint32_t)) {
				uint32_t ino;
				memcpy(&ino, (const uint8_t *)v + k, sizeof(ino));
				if (d->nicons < KM_UNIX_DIAG_ICONS)
					d->icons[d->nicons] = ino;
				d->nicons++;
			}
		} else if (a->rta_type == UNIX_DIAG_RQLEN && n >= sizeof(struct unix_diag_rqlen)) {
			struct unix_diag_rqlen q;
			memcpy(&q, v, sizeof(q));
			d->rqueue = q.udiag_rqueue;
			d->wqueue = q.udiag_wqueue;
		}
	}
}

/* The one answer to the request: a unix_diag_msg for ino, or an error. */
static int read_answer(int s, uint64_t ino, km_unix_diag_t *d, km_err_t **err)
{
	union {
		struct nlmsghdr nh;
		char b[32768]; /* a listener's pending connections come as one attribute */
	} buf;
	ssize_t n;
	do
		n = recv(s, &buf, sizeof(buf), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return km_err_set(err, errno, "reading the socket diagnostics");
	for (struct nlmsghdr *h = &buf.nh; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);
			int code = h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) ? -e->error : EIO;
			return km_err_set(err, code, "socket diagnostics of unix socket %lu", (unsigned long)ino);
		}
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
			continue;
		const struct unix_diag_msg *m = NLMSG_DATA(h);
		if (m->udiag_ino != ino)
			continue;
		memset(d, 0, sizeof(*d));
		d->state = m->udiag_state;
		parse_attrs(m, h->nlmsg_len - NLMSG_LENGTH(0), d);
		return 0;
	}
	return km_err_set(err, 0, "the socket diagnostics did not describe unix socket %lu", (unsigned long)ino);
}

int km_sockdiag_unix(uint64_t ino, km_unix_diag_t *d, km_err_t **err)
{
	if (ino > UINT32_MAX) /* the request carries 32 bits */
		return km_err_set(err, 0, "unix socket inode %lu out of the diagnostics' range", (unsigned long)ino);
	int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0)
		return km_err_set(err, errno, "opening the socket diagnostics (NETLINK_SOCK_DIAG)");
	diag_req_t q;
	memset(&q, 0, sizeof(q));
	q.nh.nlmsg_len = sizeof(q);
	q.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nh.nlmsg_flags = NLM_F_REQUEST;
	q.r.sdiag_family = AF_UNIX;
	q.r.udiag_states = ~0u;
	q.r.udiag_ino = (uint32_t)ino;
	/* the shutdown state comes always */
	q.r.udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_ICONS;
	q.r.udiag_cookie[0] = q.r.udiag_cookie[1] = DIAG_NOCOOKIE;
	struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
	int rc;
	if (sendto(s, &q, sizeof(q), 0, (struct sockaddr *)&nl, sizeof(nl)) != (ssize_t)sizeof(q))
		rc = km_err_set(err, errno, "asking the socket diagnostics");
	else
		rc = read_answer(s, ino, d, err);
	close(s);
	return rc;
}
