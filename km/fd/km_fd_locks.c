/* File locks across a snapshot: see km_fd_locks.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "km_fd_locks.h"

#define LOCK_REC_LEN 24 /* u32 type, u32 mode, u64 start, u64 end */
#define OFFSET_MAX_ ((uint64_t)INT64_MAX)

/* One "lock:" line of fdinfo (or a /proc/locks line without the prefix) as fs/locks.c prints
 * it: "1: POSIX  ADVISORY  WRITE 27868 fe:00:10953266 1 2", "1: FLOCK  ADVISORY  WRITE ... 0
 * EOF", "1: OFDLCK ADVISORY  READ -1 ... 10 EOF". False for leases, waiters and what is unknown. */
static bool parse_line(const char *s, km_fdlock_t *l, long *pid, char *devino, size_t devino_len)
{
	char type[16], adv[16], mode[16], dev[64], start[32], end[32];
	if (sscanf(s, "%*d: %15s %15s %15s %ld %63s %31s %31s", type, adv, mode, pid, dev, start, end) != 7)
		return false;
	if (strcmp(type, "FLOCK") == 0)
		l->type = KM_LOCK_FLOCK;
	else if (strcmp(type, "POSIX") == 0)
		l->type = KM_LOCK_POSIX;
	else if (strcmp(type, "OFDLCK") == 0)
		l->type = KM_LOCK_OFD;
	else
		return false;
	if (strcmp(mode, "WRITE") == 0)
		l->mode = F_WRLCK;
	else if (strcmp(mode, "READ") == 0)
		l->mode = F_RDLCK;
	else
		return false;
	char *e;
	l->start = strtoull(start, &e, 10);
	if (*e != '\0')
		return false;
	if (strcmp(end, "EOF") == 0) {
		l->end = KM_LOCK_EOF;
	} else {
		l->end = strtoull(end, &e, 10);
		if (*e != '\0')
			return false;
	}
	if (l->type == KM_LOCK_FLOCK) {
		l->start = 0;
		l->end = KM_LOCK_EOF;
	}
	if (devino != NULL)
		snprintf(devino, devino_len, "%s", dev);
	return true;
}

/* Calls fn for each lock line of an fdinfo text; stops at fn's nonzero result. */
static int each_fdinfo_lock(const char *fdinfo, int (*fn)(void *arg, const km_fdlock_t *l), void *arg)
{
	for (const char *s = fdinfo; s != NULL && *s != '\0';) {
		const char *nl = strchr(s, '\n');
		if (strncmp(s, "lock:", 5) == 0) {
			km_fdlock_t l;
			long pid;
			if (parse_line(s + 5, &l, &pid, NULL, 0)) {
				int rc = fn(arg, &l);
				if (rc != 0)
					return rc;
			}
		}
		s = nl != NULL ? nl + 1 : NULL;
	}
	return 0;
}

static int count_lock(void *arg, const km_fdlock_t *l)
{
	(void)l;
	(*(uint32_t *)arg)++;
	return 0;
}

static int put_lock(void *arg, const km_fdlock_t *l)
{
	km_buf_t *rec = arg;
	km_rec_put_u32(rec, l->type);
	km_rec_put_u32(rec, l->mode);
	km_rec_put_u64(rec, l->start);
	km_rec_put_u64(rec, l->end);
	return 0;
}

int km_fdlocks_save(const char *fdinfo, km_buf_t *rec, km_err_t **err)
{
	uint32_t n = 0;
	each_fdinfo_lock(fdinfo, count_lock, &n);
	if (n > KM_FDLOCKS_MAX)
		return km_err_set(err, 0, "it holds %u file locks, more than the %u a snapshot keeps", n, KM_FDLOCKS_MAX);
	km_rec_put_u32(rec, n);
	each_fdinfo_lock(fdinfo, put_lock, rec);
	return 0;
}

bool km_fdlocks_posix_held(dev_t dev, ino_t ino)
{
	FILE *f = fopen("/proc/locks", "re");
	if (f == NULL)
		return true; /* cannot tell: assume so, which only costs a copy in memory */
	char want[64], line[256], devino[64];
	snprintf(want, sizeof(want), "%02x:%02x:%lu", major(dev), minor(dev), (unsigned long)ino);
	long me = getpid();
	bool held = false;
	while (!held && fgets(line, sizeof(line), f) != NULL) {
		km_fdlock_t l;
		long pid;
		held = parse_line(line, &l, &pid, devino, sizeof(devino)) && l.type == KM_LOCK_POSIX && pid == me &&
		       strcmp(devino, want) == 0;
	}
	fclose(f);
	return held;
}

void km_fdlocks_free(km_fdlocks_t *l)
{
	free(l->l);
	l->l = NULL;
	l->n = 0;
}

static bool lock_ok(const km_fdlock_t *l)
{
	if (l->type < KM_LOCK_FLOCK || l->type > KM_LOCK_OFD || (l->mode != F_RDLCK && l->mode != F_WRLCK))
		return false;
	if (l->type == KM_LOCK_FLOCK)
		return l->start == 0 && l->end == KM_LOCK_EOF;
	/* the kernel's OFFSET_MAX is shown as EOF, so a real end lies below it */
	return l->start < OFFSET_MAX_ && (l->end == KM_LOCK_EOF || (l->end >= l->start && l->end < OFFSET_MAX_));
}

void km_fdlocks_get(km_rec_t *r, km_fdlocks_t *l)
{
	l->n = 0;
	l->l = NULL;
	uint32_t n = km_rec_get_u32(r);
	if (r->bad || n > KM_FDLOCKS_MAX || (size_t)n * LOCK_REC_LEN > r->len - r->at) {
		r->bad = true;
		return;
	}
	if (n == 0)
		return;
	if ((l->l = calloc(n, sizeof(*l->l))) == NULL) {
		r->bad = true;
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		km_fdlock_t *k = &l->l[i];
		k->type = km_rec_get_u32(r);
		k->mode = km_rec_get_u32(r);
		k->start = km_rec_get_u64(r);
		k->end = km_rec_get_u64(r);
		if (r->bad || !lock_ok(k)) {
			r->bad = true;
			km_fdlocks_free(l);
			return;
		}
	}
	l->n = n;
}

static const char *mode_name(uint32_t mode)
{
	return mode == F_WRLCK ? "write" : "read";
}

static struct flock to_flock(const km_fdlock_t *l)
{
	return (struct flock){.l_type = (short)l->mode,
			      .l_whence = SEEK_SET,
			      .l_start = (off_t)l->start,
			      .l_len = l->end == KM_LOCK_EOF ? 0 : (off_t)(l->end - l->start + 1)};
}

/* "its POSIX write lock on bytes 1-2 is held by another process (pid 7)" into *err. */
static int lock_busy(int fd, const km_fdlock_t *l, int e, km_err_t **err)
{
	const char *type = l->type == KM_LOCK_FLOCK ? "flock" : l->type == KM_LOCK_POSIX ? "POSIX" : "OFD";
	char range[64] = "";
	if (l->type != KM_LOCK_FLOCK) {
		if (l->end == KM_LOCK_EOF)
			snprintf(range, sizeof(range), " on bytes %lu-EOF", (unsigned long)l->start);
		else
			snprintf(range, sizeof(range), " on bytes %lu-%lu", (unsigned long)l->start, (unsigned long)l->end);
	}
	if (e != EAGAIN && e != EACCES && e != EWOULDBLOCK)
		return km_err_set(err, e, "retaking its %s %s lock%s", type, mode_name(l->mode), range);
	struct flock q = to_flock(l);
	char who[48] = "";
	if (l->type != KM_LOCK_FLOCK && fcntl(fd, l->type == KM_LOCK_POSIX ? F_GETLK : F_OFD_GETLK, &q) == 0 &&
	    q.l_type != F_UNLCK && q.l_pid > 0)
		snprintf(who, sizeof(who), " (pid %d)", (int)q.l_pid);
	return km_err_set(err, 0, "its %s %s lock%s is held by another process%s", type, mode_name(l->mode), range,
			  who);
}

static int take(int fd, const km_fdlock_t *l, km_err_t **err)
{
	int rc;
	if (l->type == KM_LOCK_FLOCK) {
		rc = flock(fd, (l->mode == F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB);
	} else {
		struct flock fl = to_flock(l);
		rc = fcntl(fd, l->type == KM_LOCK_POSIX ? F_SETLK : F_OFD_SETLK, &fl);
	}
	return rc < 0 ? lock_busy(fd, l, errno, err) : 0;
}

typedef struct posix_later {
	int fd; /* the guest's fd, placed by then */
	uint32_t n;
	km_fdlock_t l[]; /* the POSIX locks */
} posix_later_t;

static int take_posix(void *arg, km_err_t **err)
{
	posix_later_t *p = arg;
	for (uint32_t i = 0; i < p->n; i++)
		if (take(p->fd, &p->l[i], err) < 0)
			return -1;
	return 0;
}

int km_fdlocks_restore(km_fdrest_t *rs, const km_fdrec_t *r, int fd, const km_fdlocks_t *l, km_err_t **err)
{
	uint32_t nposix = 0;
	for (uint32_t i = 0; i < l->n; i++) {
		if (l->l[i].type == KM_LOCK_POSIX)
			nposix++;
		else if (take(fd, &l->l[i], err) < 0)
			return -1;
	}
	if (nposix == 0)
		return 0;
	posix_later_t *p = malloc(sizeof(*p) + nposix * sizeof(p->l[0]));
	if (p == NULL)
		return km_err_set(err, ENOMEM, "keeping its POSIX locks");
	p->fd = r->first_fd;
	p->n = 0;
	for (uint32_t i = 0; i < l->n; i++)
		if (l->l[i].type == KM_LOCK_POSIX)
			p->l[p->n++] = l->l[i];
	return km_fdrest_after(rs, take_posix, p, err);
}

void km_fdlocks_describe(const km_fdlocks_t *l, km_buf_t *out)
{
	for (uint32_t i = 0; i < l->n; i++) {
		const km_fdlock_t *k = &l->l[i];
		const char *t = k->type == KM_LOCK_FLOCK ? "flock" : k->type == KM_LOCK_POSIX ? "posix" : "ofd";
		km_buf_printf(out, "%s%s:%c", i == 0 ? " locks=" : ",", t, k->mode == F_WRLCK ? 'w' : 'r');
		if (k->type == KM_LOCK_FLOCK)
			continue;
		if (k->end == KM_LOCK_EOF)
			km_buf_printf(out, "@%lu-", (unsigned long)k->start);
		else
			km_buf_printf(out, "@%lu-%lu", (unsigned long)k->start, (unsigned long)k->end);
	}
}
