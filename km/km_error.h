/*
 * Error objects carried up the call chain.
 *
 * A function that can fail takes `km_err_t **err` as its last argument, returns -1 (or NULL) on
 * failure and leaves a heap-allocated error describing what failed, on which file or id, and why.
 * The caller adds context with km_err_wrap() or hands it further up; main() prints it as one line.
 */
#ifndef KM_ERROR_H
#define KM_ERROR_H

#include <stdarg.h>

typedef struct km_err {
	int errnum; /* errno behind the failure, 0 if none */
	char *msg;  /* full message, context first: "loading 'prog': reading ELF header: ..." */
} km_err_t;

/* Sets *err to a new error from printf-style text; appends strerror(errnum) when errnum != 0.
 * Always returns -1 so callers can `return km_err_set(...)`. */
int km_err_set(km_err_t **err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes context to an existing error ("context: old message"). Returns -1. */
int km_err_wrap(km_err_t **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees an error and sets *err to NULL; safe on NULL. */
void km_err_free(km_err_t **err);

/* km's own messages go to a copy of the stderr km was started with, kept above the guest's fds:
 * the guest owns fd 2 and may close it and open a file there, which must not receive km's lines.
 * km_error_keep_stderr() makes that copy (once, before the guest runs) and points `stderr` at it;
 * km_error_fd() is the fd to write to (2 until then, or if fd 2 was not open). */
void km_error_keep_stderr(int min_fd);
int km_error_fd(void);
/* Makes fd (in km's range, km's stderr before an execve of km: km_exec_state.h) km's stderr
 * instead, closing the copy km_error_keep_stderr made. */
void km_error_use_fd(int fd);

/* Cleanup attribute helpers: free a pointer / close an fd when the variable leaves scope. */
void km_cleanup_freep(void *p);
void km_cleanup_closep(int *fd);
#define km_autofree __attribute__((cleanup(km_cleanup_freep)))
#define km_autoclose __attribute__((cleanup(km_cleanup_closep)))

#endif
