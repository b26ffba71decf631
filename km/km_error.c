/* Error objects: see km_error.h. */
#include "km_error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *vformat(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

int km_err_set(km_err_t **err, int errnum, const char *fmt, ...)
{
	if (err == NULL)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	char *text = vformat(fmt, ap);
	va_end(ap);
	km_err_t *e = calloc(1, sizeof(*e));
	if (e == NULL) {
		free(text);
		return -1;
	}
	e->errnum = errnum;
	if (errnum != 0 && text != NULL) {
		char *full = NULL;
		if (asprintf(&full, "%s: %s", text, strerror(errnum)) >= 0) {
			free(text);
			text = full;
		}
	}
	e->msg = text != NULL ? text : strdup("out of memory while reporting an error");
	km_err_free(err);
	*err = e;
	return -1;
}

int km_err_wrap(km_err_t **err, const char *fmt, ...)
{
	if (err == NULL || *err == NULL)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	char *ctx = vformat(fmt, ap);
	va_end(ap);
	char *full = NULL;
	if (ctx != NULL && asprintf(&full, "%s: %s", ctx, (*err)->msg) >= 0) {
		free((*err)->msg);
		(*err)->msg = full;
	}
	free(ctx);
	return -1;
}

void km_err_free(km_err_t **err)
{
	if (err == NULL || *err == NULL)
		return;
	free((*err)->msg);
	free(*err);
	*err = NULL;
}

void km_cleanup_freep(void *p)
{
	free(*(void **)p);
}

void km_cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static int err_fd = 2;

void km_error_keep_stderr(int min_fd)
{
	if (err_fd != 2)
		return;
	int fd = fcntl(2, F_DUPFD_CLOEXEC, min_fd);
	if (fd < 0)
		return; /* no stderr to keep: messages go where fd 2 goes, as before */
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return;
	}
	setvbuf(f, NULL, _IONBF, 0);
	fflush(stderr);
	stderr = f;
	err_fd = fd;
}

void km_error_use_fd(int fd)
{
	FILE *f = fdopen(fd, "w");
	if (f == NULL)
		return;
	setvbuf(f, NULL, _IONBF, 0);
	fflush(stderr);
	FILE *old = stderr;
	bool ours = err_fd != 2;
	stderr = f;
	err_fd = fd;
	if (ours)
		fclose(old);
}

int km_error_fd(void)
{
	return err_fd;
}
