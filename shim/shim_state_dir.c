/* A container's directory: see shim_state_dir.h. */
#include "shim_state_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMP_PREFIX ".new-"
#define ID_MAX 1024

int shim_id_check(const char *id, km_err_t **err)
{
	if (id == NULL || *id == '\0')
		return km_err_set(err, 0, "container id cannot be empty");
	size_t n = strlen(id);
	if (n > ID_MAX)
		return km_err_set(err, 0, "invalid container id \"%.40s...\": longer than %d bytes", id, ID_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
			  (c >= '+' && c <= '.');
		if (!ok)
			return km_err_set(err, 0,
					  "invalid container id \"%s\": only letters, digits and _ + , - . are allowed", id);
	}
	if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return km_err_set(err, 0, "invalid container id \"%s\"", id);
	return 0;
}

int shim_root_make(const char *root, km_err_t **err)
{
	if (mkdir(root, 0711) == 0 || errno == EEXIST)
		return 0;
	if (errno == ENOENT) {
		/* the parents too (a root under /tmp that a test names) */
		char *p = strdup(root);
		if (p == NULL)
			return km_err_set(err, ENOMEM, "making %s", root);
		for (char *s = p + 1; *s != '\0'; s++) {
			if (*s != '/')
				continue;
			*s = '\0';
			if (mkdir(p, 0755) != 0 && errno != EEXIST) {
				int e = errno;
				free(p);
				return km_err_set(err, e, "making the state root %s", root);
			}
			*s = '/';
		}
		free(p);
		if (mkdir(root, 0711) == 0 || errno == EEXIST)
			return 0;
	}
	return km_err_set(err, errno, "making the state root %s", root);
}

static char *join(const char *a, const char *b)
{
	char *s;
	return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

char *shim_dir_file(const shim_dir_t *d, const char *name)
{
	return join(d->path, name);
}

void shim_dir_close(shim_dir_t *d)
{
	if (d->dirfd >= 0)
		close(d->dirfd);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	free(d->path);
	free(d->id);
	*d = (shim_dir_t)SHIM_DIR_INIT;
}

static int not_exist(const char *id, km_err_t **err)
{
	return km_err_set(err, 0, "container \"%s\" does not exist", id), (*err)->errnum = ENOENT, -1;
}

/* Locks the directory open in d: takes the flock, waiting for another km-shim call. */
static int lock_dir(shim_dir_t *d, bool create, km_err_t **err)
{
	d->lock_fd = openat(d->dirfd, "lock", O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
	if (d->lock_fd < 0)
		return km_err_set(err, errno, "%s/lock", d->path);
	int r;
	do
		r = flock(d->lock_fd, LOCK_EX);
	while (r != 0 && errno == EINTR);
	if (r != 0)
		return km_err_set(err, errno, "locking %s/lock", d->path);
	return 0;
}

int shim_dir_open(const char *root, const char *id, bool lock, shim_dir_t *d, km_err_t **err)
{
	*d = (shim_dir_t)SHIM_DIR_INIT;
	if (shim_id_check(id, err) != 0)
		return -1;
	d->id = strdup(id);
	d->path = join(root, id);
	if (d->id == NULL || d->path == NULL) {
		shim_dir_close(d);
		return km_err_set(err, ENOMEM, "opening container %s", id);
	}
	d->dirfd = open(d->path, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (d->dirfd < 0) {
		int e = errno;
		shim_dir_close(d);
		if (e == ENOENT || e == ENOTDIR || e == ELOOP)
			return not_exist(id, err);
		return km_err_set(err, e, "opening %s/%s", root, id);
	}
	if (lock && lock_dir(d, false, err) != 0) {
		bool gone = (*err)->errnum == ENOENT;
		shim_dir_close(d);
		if (gone) /* removed between our open and the lock's */
			return km_err_free(err), not_exist(id, err);
		return -1;
	}
	/* Another call may have removed the directory while we waited for the lock. */
	struct stat st;
	if (fstat(d->dirfd, &st) != 0 || st.st_nlink == 0) {
		shim_dir_close(d);
		return not_exist(id, err);
	}
	return 0;
}

/* Removes everything in directory fd `dfd` (one level of subdirectories and more, recursively). */
static int clear_dir(int dfd, const char *path, km_err_t **err)
{
	int fd = dup(dfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (dir == NULL) {
		if (fd >= 0)
			close(fd);
		return km_err_set(err, errno, "reading %s", path);
	}
	rewinddir(dir);
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dfd, e->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			rc = km_err_set(err, errno, "removing %s/%s", path, e->d_name);
			continue;
		}
		int sub = openat(dfd, e->d_name, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		char *sp = join(path, e->d_name);
		if (sub < 0 || sp == NULL || clear_dir(sub, sp, err) != 0 || unlinkat(dfd, e->d_name, AT_REMOVEDIR) != 0)
			rc = (*err != NULL) ? -1 : km_err_set(err, errno, "removing %s/%s", path, e->d_name);
		if (sub >= 0)
			close(sub);
		free(sp);
	}
	closedir(dir);
	return rc;
}

int shim_dir_remove(shim_dir_t *d, km_err_t **err)
{
	if (clear_dir(d->dirfd, d->path, err) != 0)
		return -1;
	if (rmdir(d->path) != 0 && errno != ENOENT)
		return km_err_set(err, errno, "removing %s", d->path);
	return 0;
}

/* A create publishes its temporary directory within a moment of making it; one older than this
 * whose lock is free belongs to a create that died. Younger ones are left alone even when their
 * lock looks free: their create may not have taken it yet. */
#define STALE_SECONDS 30

/* Removes temporary directories of creates that died before publishing. */
static void sweep_stale(const char *root)
{
	DIR *dir = opendir(root);
	if (dir == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		struct stat st;
		if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0 ||
		    fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode) ||
		    time(NULL) - st.st_mtime < STALE_SECONDS)
			continue;
		shim_dir_t t = SHIM_DIR_INIT;
		t.path = join(root, e->d_name);
		t.dirfd = t.path != NULL ? open(t.path, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
		if (t.dirfd >= 0)
			t.lock_fd = openat(t.dirfd, "lock", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		km_err_t *err = NULL;
		if (t.dirfd >= 0 && (t.lock_fd < 0 || flock(t.lock_fd, LOCK_EX | LOCK_NB) == 0) &&
		    fstat(t.dirfd, &st) == 0 && st.st_nlink > 0)
			shim_dir_remove(&t, &err);
		km_err_free(&err);
		shim_dir_close(&t);
	}
	closedir(dir);
}

int shim_dir_begin(const char *root, const char *id, shim_dir_t *d, km_err_t **err)
{
	*d = (shim_dir_t)SHIM_DIR_INIT;
	if (shim_id_check(id, err) != 0 || shim_root_make(root, err) != 0)
		return -1;
	sweep_stale(root);
	char *final = join(root, id);
	if (final == NULL)
		return km_err_set(err, ENOMEM, "creating container %s", id);
	struct stat st;
	bool exists = lstat(final, &st) == 0;
	free(final);
	if (exists)
		return km_err_set(err, 0, "container \"%s\" already exists", id), (*err)->errnum = EEXIST, -1;
	d->id = strdup(id);
	if (d->id == NULL || asprintf(&d->path, "%s/" TMP_PREFIX "%.32s-XXXXXX", root, id) < 0) {
		d->path = NULL;
		shim_dir_close(d);
		return km_err_set(err, ENOMEM, "creating container %s", id);
	}
	if (mkdtemp(d->path) == NULL) {
		int e = errno;
		shim_dir_close(d);
		return km_err_set(err, e, "creating a directory in %s", root);
	}
	d->dirfd = open(d->path, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (d->dirfd < 0 || lock_dir(d, true, err) != 0) {
		if (d->dirfd < 0)
			km_err_set(err, errno, "opening %s", d->path);
		rmdir(d->path);
		shim_dir_close(d);
		return -1;
	}
	return 0;
}

int shim_dir_publish(shim_dir_t *d, const char *root, km_err_t **err)
{
	char *final = join(root, d->id);
	if (final == NULL)
		return km_err_set(err, ENOMEM, "creating container %s", d->id);
	if (renameat2(AT_FDCWD, d->path, AT_FDCWD, final, RENAME_NOREPLACE) != 0) {
		int e = errno;
		free(final);
		if (e == EEXIST || e == ENOTEMPTY)
			return km_err_set(err, 0, "container \"%s\" already exists", d->id), (*err)->errnum = EEXIST, -1;
		return km_err_set(err, e, "creating %s/%s", root, d->id);
	}
	free(d->path);
	d->path = final;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int shim_dir_list(const char *root, char ***ids, km_err_t **err)
{
	size_t n = 0, cap = 8;
	char **v = calloc(cap + 1, sizeof(*v));
	if (v == NULL)
		return km_err_set(err, ENOMEM, "listing %s", root);
	DIR *dir = opendir(root);
	if (dir == NULL && errno != ENOENT) {
		free(v);
		return km_err_set(err, errno, "listing %s", root);
	}
	struct dirent *e;
	bool oom = false; /* a list missing a container must not pass for the whole list */
	while (!oom && dir != NULL && (e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.' || shim_id_check(e->d_name, NULL) != 0)
			continue;
		if (n == cap) {
			char **nv = realloc(v, (cap * 2 + 1) * sizeof(*v));
			if ((oom = nv == NULL))
				break;
			v = nv;
			cap *= 2;
		}
		if (!(oom = (v[n] = strdup(e->d_name)) == NULL))
			n++;
	}
	if (dir != NULL)
		closedir(dir);
	v[n] = NULL;
	if (oom) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return km_err_set(err, ENOMEM, "listing %s", root);
	}
	qsort(v, n, sizeof(*v), cmp_str);
	*ids = v;
	return 0;
}
