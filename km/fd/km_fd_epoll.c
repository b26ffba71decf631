/*
 * The epoll kind of the fd table (km_fdtab.h): the interest list, rebuilt in phase 1 when the
 * files it watches sit at their guest numbers again.
 *
 * An epoll item is keyed by (file, fd number): the number the file had when it was added. The
 * fdinfo lists each item's number ("tfd"); kcmp KCMP_EPOLL_TFD says which guest fd holds the
 * file now. Usually that is the same number. When the program closed that number and keeps the
 * file under another (a dup), the record names both, and the resume puts the file at the old
 * number just long enough to add it (whatever sits there is put back), which is what the
 * kernel keeps: the number in the key, the file behind it.
 *
 * Record: u32 n, then n x {u32 fd (the item's number), u32 holder (the guest fd that has the
 * file), u32 events (as the kernel shows them: EPOLLERR|EPOLLHUP always, EPOLLET, EPOLLONESHOT,
 * EPOLLEXCLUSIVE, EPOLLWAKEUP), u64 data}.
 *
 * What a resume does not keep: an edge-triggered item whose file is ready reports once more (the
 * kernel checks readiness when an item is added); a one-shot item already fired comes back armed
 * for EPOLLERR and EPOLLHUP only (epoll_ctl always adds those). An epoll watching an epoll, or a
 * file no fd of the program holds any more, is recorded as unsupported.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kcmp.h>

#include "km_fdtab.h"
#include "km_machine.h"
#include "km_sys_util.h"

#define EP_EVENTS                                                                                          \
	((uint32_t)(EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDNORM | EPOLLRDBAND |      \
		    EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP | EPOLLEXCLUSIVE | EPOLLWAKEUP |     \
		    EPOLLONESHOT | EPOLLET))

typedef struct item {
	uint32_t fd, holder, events;
	uint64_t data;
} item_t;

static bool epoll_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	return strcmp(p->link, "anon_inode:[eventpoll]") == 0;
}

/* Guest fd `fd` is the file of epoll ep's item (tfd, toff-th of that number). */
static bool watched_is(int ep, uint32_t tfd, uint32_t toff, int fd)
{
	pid_t me = getpid();
	struct kcmp_epoll_slot slot = {.efd = (uint32_t)ep, .tfd = tfd, .toff = toff};
	return syscall(SYS_kcmp, me, me, KCMP_EPOLL_TFD, fd, &slot) == 0;
}

/* The lowest guest fd holding the file of item (tfd, toff), or -1. */
static int holder_of(int ep, uint32_t tfd, uint32_t toff)
{
	if (tfd < KM_FD_RESERVED_BASE && watched_is(ep, tfd, toff, (int)tfd))
		return (int)tfd;
	for (int fd = 0; fd < KM_FD_RESERVED_BASE; fd++)
		if (fcntl(fd, F_GETFD) >= 0 && watched_is(ep, tfd, toff, fd))
			return fd;
	return -1;
}

static bool is_epoll(int fd)
{
	char link[64];
	ssize_t n = km_fd_path(fd, link, sizeof(link));
	return n > 0 && strcmp(link, "anon_inode:[eventpoll]") == 0;
}

/* Items (fdinfo order) into *items; -1 with *err, or 1 with *err (unsupported). */
static int parse_items(const km_fdprobe_t *p, item_t **items, uint32_t *n, km_err_t **err)
{
	*items = NULL;
	*n = 0;
	for (const char *l = p->fdinfo; l != NULL && *l != '\0'; l = strchr(l, '\n'), l = l != NULL ? l + 1 : NULL) {
		unsigned int tfd, events;
		unsigned long long data;
		if (sscanf(l, "tfd: %u events: %x data: %llx", &tfd, &events, &data) != 3)
			continue;
		uint32_t toff = 0;
		for (uint32_t i = 0; i < *n; i++)
			toff += (*items)[i].fd == tfd;
		int h = holder_of(p->fd, tfd, toff);
		if (h < 0) {
			km_err_set(err, 0, "epoll watching a file added as fd %u that no fd of the program holds any more",
				   tfd);
			return 1;
		}
		if (is_epoll(h)) {
			km_err_set(err, 0, "epoll watching another epoll (fd %d): km does not restore nested epolls", h);
			return 1;
		}
		item_t *grown = realloc(*items, (*n + 1) * sizeof(**items));
		if (grown == NULL)
			return km_err_set(err, ENOMEM, "its interest list");
		*items = grown;
		(*items)[(*n)++] = (item_t){tfd, (uint32_t)h, events, data};
	}
	return 0;
}

static int epoll_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	(void)sv;
	item_t *items;
	uint32_t n;
	int rc = parse_items(p, &items, &n, err);
	if (rc == 0) {
		km_rec_put_u32(rec, n);
		for (uint32_t i = 0; i < n; i++) {
			km_rec_put_u32(rec, items[i].fd);
			km_rec_put_u32(rec, items[i].holder);
			km_rec_put_u32(rec, items[i].events);
			km_rec_put_u64(rec, items[i].data);
		}
	}
	free(items);
	return rc;
}

/* The record's items (malloc'd, *n of them) or NULL if the record is bad. */
static item_t *read_items(const km_fdrec_t *r, uint32_t *n)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	*n = km_rec_get_u32(&rec);
	/* each item needs a distinct (file, number): more than the guest can have fds is a lie */
	if (rec.bad || *n > KM_FD_RESERVED_BASE || r->len != 4 + (size_t)*n * 20)
		return NULL;
	item_t *items = calloc(*n + 1, sizeof(*items));
	for (uint32_t i = 0; items != NULL && i < *n; i++) {
		items[i].fd = km_rec_get_u32(&rec);
		items[i].holder = km_rec_get_u32(&rec);
		items[i].events = km_rec_get_u32(&rec);
		items[i].data = km_rec_get_u64(&rec);
		if (items[i].fd >= KM_FD_RESERVED_BASE || items[i].holder >= KM_FD_RESERVED_BASE ||
		    (items[i].events & ~EP_EVENTS) != 0)
			rec.bad = true;
	}
	if (items != NULL && !km_rec_done(&rec)) {
		free(items);
		items = NULL;
	}
	return items;
}

/* Adds the file at guest fd `holder` to ep under number `fd`, moving it there for the call if
 * it sits elsewhere (and putting back what was at `fd`, with its close-on-exec flag). */
static int add_item(int ep, const item_t *it, km_err_t **err)
{
	struct epoll_event ev = {.events = it->events, .data.u64 = it->data};
	int fd = (int)it->fd, saved = -1, fdflags = -1;
	if (it->holder != it->fd) {
		fdflags = fcntl(fd, F_GETFD);
		if (fdflags >= 0 && (saved = fcntl(fd, F_DUPFD_CLOEXEC, KM_FD_RESERVED_BASE)) < 0)
			return km_err_set(err, errno, "keeping fd %d aside", fd);
		if (dup2((int)it->holder, fd) < 0) {
			int e = errno;
			if (saved >= 0)
				close(saved);
			return km_err_set(err, e, "putting fd %u at %d", it->holder, fd);
		}
	}
	int rc = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? errno : 0;
	if (saved >= 0) {
		if (dup3(saved, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0 && rc == 0)
			rc = errno;
		close(saved);
	} else if (it->holder != it->fd) {
		close(fd);
	}
	if (rc != 0)
		return km_err_set(err, rc, "watching fd %d (events %#x)", fd, it->events);
	return 0;
}

static int epoll_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	uint32_t n;
	item_t *items = read_items(r, &n);
	if (items == NULL || (r->oflags & ~(uint32_t)O_NONBLOCK) != O_RDWR) {
		free(items);
		return km_err_set(err, 0, "corrupt record");
	}
	/* in km's range at once: add_item moves guest fds over free low numbers */
	int ep = km_fd_reserve(epoll_create1(EPOLL_CLOEXEC));
	if (ep < 0) {
		free(items);
		return km_err_set(err, errno, "epoll_create1");
	}
	int rc = fcntl(ep, F_SETFL, (int)(r->oflags & O_NONBLOCK)) < 0 ? km_err_set(err, errno, "F_SETFL") : 0;
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		if (km_fdrest_placed(rs, (int)items[i].holder) < 0)
			rc = km_err_set(err, 0, "fd %u, which it watches, was not restored", items[i].holder);
		else
			rc = add_item(ep, &items[i], err);
	}
	free(items);
	if (rc < 0) {
		close(ep);
		return -1;
	}
	return ep;
}

static void put_events(km_buf_t *out, uint32_t ev)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {{EPOLLIN, "in"},         {EPOLLPRI, "pri"},       {EPOLLOUT, "out"},
		     {EPOLLRDNORM, "rdnorm"}, {EPOLLRDBAND, "rdband"}, {EPOLLWRNORM, "wrnorm"},
		     {EPOLLWRBAND, "wrband"}, {EPOLLMSG, "msg"},       {EPOLLRDHUP, "rdhup"},
		     {EPOLLEXCLUSIVE, "exclusive"}, {EPOLLWAKEUP, "wakeup"}, {EPOLLONESHOT, "oneshot"},
		     {EPOLLET, "et"}};
	const char *sep = "";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (ev & names[i].bit) {
			km_buf_printf(out, "%s%s", sep, names[i].name);
			sep = ",";
		}
	if (*sep == '\0')
		km_buf_printf(out, "none");
}

static void epoll_describe(const km_fdrec_t *r, km_buf_t *out)
{
	uint32_t n;
	item_t *items = read_items(r, &n);
	if (items == NULL) {
		km_buf_printf(out, "(corrupt record)");
		return;
	}
	km_buf_printf(out, "%u target%s%s", n, n == 1 ? "" : "s", n > 0 ? ":" : "");
	for (uint32_t i = 0; i < n; i++) {
		km_buf_printf(out, "%s fd %u", i > 0 ? ";" : "", items[i].fd);
		if (items[i].holder != items[i].fd)
			km_buf_printf(out, " (the file of fd %u)", items[i].holder);
		km_buf_printf(out, " ");
		put_events(out, items[i].events & ~(uint32_t)(EPOLLERR | EPOLLHUP));
		km_buf_printf(out, " data=%#" PRIx64, items[i].data);
	}
	free(items);
}

const km_fdkind_t km_fdkind_epoll = {
    .kind = KM_FDK_EPOLL,
    .name = "epoll",
    .phase = 1,
    .match = epoll_match,
    .save = epoll_save,
    .restore = epoll_restore,
    .describe = epoll_describe,
};
