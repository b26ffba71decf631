/* Paths inside a rootfs without escaping it: see shim_path.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim_path.h"

#define SHIM_PATH_MAX_DEPTH 256
#define SHIM_PATH_MAX_LINKS 40

void shim_path_fdname(int fd, char buf[32])
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
}

typedef struct walk {
	int stack[SHIM_PATH_MAX_DEPTH];
	int depth; /* stack[0] is the root, stack[depth] the current directory */
	char via[NAME_MAX + 1]; /* the last symlink followed, for the escape message */
} walk_t;

static void walk_reset(walk_t *w)
{
	while (w->depth > 0)
		close(w->stack[w->depth--]);
}

static int walk_create(int dirfd, const char *name, bool as_file)
{
	if (as_file) {
		int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0)
			return errno == EEXIST ? 0 : -1;
		close(fd);
		return 0;
	}
	if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Moves to component `name`; *link gets a symlink's target (malloc'd) instead of moving. */
static int walk_step(walk_t *w, const char *name, bool last, shim_path_create_t create, char **link,
		     const char *path, km_err_t **err)
{
	int top = w->stack[w->depth];
	*link = NULL;
	int fd = openat(top, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create != SHIM_PATH_NOCREATE) {
		if (walk_create(top, name, last && create == SHIM_PATH_MKFILE) < 0)
			return km_err_set(err, errno, "%s: creating %s", path, name);
		fd = openat(top, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return km_err_set(err, errno, "%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return km_err_set(err, errno, "%s: stat %s", path, name);
	}
	if (S_ISLNK(st.st_mode)) {
		char *buf = malloc(PATH_MAX);
		ssize_t n = buf ? readlinkat(fd, "", buf, PATH_MAX - 1) : -1;
		int e = errno;
		close(fd);
		if (n < 0) {
			free(buf);
			return km_err_set(err, e, "%s: reading symlink %s", path, name);
		}
		buf[n] = '\0';
		snprintf(w->via, sizeof(w->via), "%s", name);
		*link = buf;
		return 0;
	}
	if (!last && !S_ISDIR(st.st_mode)) {
		close(fd);
		return km_err_set(err, ENOTDIR, "%s: %s", path, name);
	}
	if (w->depth + 1 >= SHIM_PATH_MAX_DEPTH) {
		close(fd);
		return km_err_set(err, ENAMETOOLONG, "%s", path);
	}
	w->stack[++w->depth] = fd;
	return 0;
}

/* The walk: validates containment (and creates) and leaves the final fd on top of the stack. */
static int walk_path(walk_t *w, const char *path, shim_path_create_t create, km_err_t **err)
{
	size_t cap = strlen(path) + 1;
	char *rest = malloc(cap);
	if (!rest)
		return km_err_set(err, ENOMEM, "%s", path);
	memcpy(rest, path, cap);
	int links = 0, rc = 0;
	char *p = rest;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[NAME_MAX + 1];
		if (len > NAME_MAX) {
			rc = km_err_set(err, ENAMETOOLONG, "%s", path);
			break;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;
		const char *q = p;
		while (*q == '/')
			q++;
		bool last = !*q;
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, "..")) {
			if (w->depth == 0) {
				rc = w->via[0] ? km_err_set(err, 0, "%s: escapes the rootfs through symlink %s", path, w->via)
					       : km_err_set(err, 0, "%s: escapes the rootfs (\"..\" above its top)", path);
				break;
			}
			close(w->stack[w->depth--]);
			continue;
		}
		char *link;
		if (walk_step(w, name, last, create, &link, path, err) < 0) {
			rc = -1;
			break;
		}
		if (!link)
			continue;
		if (++links > SHIM_PATH_MAX_LINKS) {
			free(link);
			rc = km_err_set(err, ELOOP, "%s", path);
			break;
		}
		/* The symlink's target replaces its component; an absolute one starts again at the top. */
		if (link[0] == '/')
			walk_reset(w);
		size_t nl = strlen(link), nr = strlen(p);
		char *next = malloc(nl + nr + 2);
		if (!next) {
			free(link);
			rc = km_err_set(err, ENOMEM, "%s", path);
			break;
		}
		memcpy(next, link, nl);
		next[nl] = '/';
		memcpy(next + nl + 1, p, nr + 1);
		free(link);
		free(rest);
		rest = p = next;
	}
	free(rest);
	return rc;
}

int shim_path_open(int rootfd, const char *path, shim_path_create_t create, km_err_t **err)
{
	walk_t w = { .depth = 0 };
	w.stack[0] = rootfd;
	if (walk_path(&w, path, create, err) < 0) {
		walk_reset(&w);
		return -1;
	}
	/* The walk proved containment; openat2 makes the kernel enforce it for the fd we return. */
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	const char *rel = path;
	while (*rel == '/')
		rel++;
	int fd = (int)syscall(SYS_openat2, rootfd, *rel ? rel : ".", &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) {
		int e = errno;
		walk_reset(&w);
		if (fd < 0)
			return km_err_set(err, e, "%s", path);
		return fd;
	}
	if (w.depth == 0)
		return fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	fd = w.stack[w.depth--];
	walk_reset(&w);
	return fd;
}

int shim_path_open_parent(int rootfd, const char *path, bool mkdirs, const char **base, km_err_t **err)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	size_t b = n;
	while (b > 0 && path[b - 1] != '/')
		b--;
	if (b == n)
		return km_err_set(err, EINVAL, "%s: no last component", path);
	char *dir = strndup(path, b);
	if (!dir)
		return km_err_set(err, ENOMEM, "%s", path);
	int fd = shim_path_open(rootfd, dir, mkdirs ? SHIM_PATH_MKDIR : SHIM_PATH_NOCREATE, err);
	free(dir);
	*base = path + b;
	return fd;
}
