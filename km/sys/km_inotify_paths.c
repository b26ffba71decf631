/* The paths of the guest's inotify watches: see km_inotify_paths.h. */
#include "km_inotify_paths.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "km_sys_util.h"

typedef struct note {
	dev_t dev;
	ino_t ino;
	uint32_t flags;
	char *path;
	bool used; /* while pruning: some inotify fd watches it */
} note_t;

struct km_inotify_paths {
	pthread_mutex_t lock;
	note_t *notes;
	size_t n;
};

/* The guest's table, made on first use (two threads may race to make it: one wins). */
static struct km_inotify_paths *table(km_guest_t *g)
{
	struct km_inotify_paths *t = __atomic_load_n(&g->inotify_paths, __ATOMIC_ACQUIRE);
	if (t != NULL)
		return t;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	struct km_inotify_paths *none = NULL;
	if (!__atomic_compare_exchange_n(&g->inotify_paths, &none, t, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		pthread_mutex_destroy(&t->lock);
		free(t);
		return none;
	}
	return t;
}

/* Marks the notes some watch of inotify fd `fd` uses (its fdinfo lines "inotify wd:N ino:X
 * sdev:Y ..."; sdev is the kernel's encoding, major << 20 | minor). */
static void mark_watched(struct km_inotify_paths *t, int fd)
{
	char name[64];
	snprintf(name, sizeof(name), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(name, "re");
	if (f == NULL)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long ino;
		unsigned int sdev;
		int wd;
		if (sscanf(line, "inotify wd:%d ino:%lx sdev:%x", &wd, &ino, &sdev) != 3)
			continue;
		dev_t dev = makedev(sdev >> 20, sdev & 0xfffff);
		for (size_t i = 0; i < t->n; i++)
			if (t->notes[i].ino == (ino_t)ino && t->notes[i].dev == dev)
				t->notes[i].used = true;
	}
	fclose(f);
}

/* Forgets what no inotify fd of the guest watches any more (a slow scan: only when full). */
static void prune(km_guest_t *g, struct km_inotify_paths *t)
{
	for (size_t i = 0; i < t->n; i++)
		t->notes[i].used = false;
	int lim = km_fd_limit(g);
	for (int fd = 0; fd < lim; fd++) {
		char link[32];
		if (km_fd_path(fd, link, sizeof(link)) > 0 && strcmp(link, "anon_inode:inotify") == 0)
			mark_watched(t, fd);
	}
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (t->notes[i].used)
			t->notes[k++] = t->notes[i];
		else
			free(t->notes[i].path);
	}
	t->n = k;
}

/* An absolute form of path (against the cwd), malloc'd; NULL if too long or out of memory. */
static char *absolute(const char *path)
{
	if (path[0] == '/')
		return strdup(path);
	char cwd[KM_PATH_MAX];
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	size_t c = strcmp(cwd, "/") == 0 ? 0 : strlen(cwd), p = strlen(path);
	char *abs = c + 1 + p + 1 <= KM_PATH_MAX ? malloc(c + 1 + p + 1) : NULL;
	if (abs != NULL) {
		memcpy(abs, cwd, c);
		abs[c] = '/';
		memcpy(abs + c + 1, path, p + 1);
	}
	return abs;
}

static int lookup_stat(const char *path, uint32_t flags, struct stat *st)
{
	return fstatat(AT_FDCWD, path, st, (flags & IN_DONT_FOLLOW) ? AT_SYMLINK_NOFOLLOW : 0);
}

void km_inotify_note(km_guest_t *g, const char *path, uint32_t mask)
{
	struct km_inotify_paths *t = table(g);
	char *abs = absolute(path);
	struct stat st;
	uint32_t flags = mask & IN_DONT_FOLLOW;
	if (t == NULL || abs == NULL || lookup_stat(abs, flags, &st) < 0) {
		free(abs);
		return;
	}
	pthread_mutex_lock(&t->lock);
	size_t i;
	for (i = 0; i < t->n; i++)
		if (t->notes[i].dev == st.st_dev && t->notes[i].ino == st.st_ino)
			break;
	if (i == t->n && t->n == KM_INOTIFY_PATHS_MAX)
		prune(g, t);
	note_t *grown = NULL;
	if (i == t->n && t->n < KM_INOTIFY_PATHS_MAX && (grown = realloc(t->notes, (t->n + 1) * sizeof(*grown))) != NULL) {
		t->notes = grown;
		t->notes[t->n++] = (note_t){.dev = st.st_dev, .ino = st.st_ino};
	}
	if (i < t->n) {
		free(t->notes[i].path);
		t->notes[i].path = abs;
		t->notes[i].flags = flags;
		abs = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	free(abs);
}

bool km_inotify_path(km_guest_t *g, dev_t dev, ino_t ino, char *buf, size_t len, uint32_t *flags)
{
	struct km_inotify_paths *t = __atomic_load_n(&g->inotify_paths, __ATOMIC_ACQUIRE);
	if (t == NULL)
		return false;
	bool found = false;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->n && !found; i++) {
		const note_t *nt = &t->notes[i];
		struct stat st;
		if (nt->dev == dev && nt->ino == ino && strlen(nt->path) < len &&
		    lookup_stat(nt->path, nt->flags, &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
			strcpy(buf, nt->path);
			*flags = nt->flags;
			found = true;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return found;
}

void km_inotify_free(km_guest_t *g)
{
	struct km_inotify_paths *t = g->inotify_paths;
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->notes[i].path);
	free(t->notes);
	pthread_mutex_destroy(&t->lock);
	free(t);
	g->inotify_paths = NULL;
}
