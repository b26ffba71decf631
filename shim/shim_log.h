/*
 * km-shim's log: runc's formats, so clients that read runc's log read ours.
 *   text: time="2024-01-02T03:04:05Z" level=error msg="..."   (logrus's text format)
 *   json: {"level":"error","msg":"...","time":"2024-01-02T03:04:05Z"}   one object per line
 * Without --log, lines go to stderr. Debug lines are written only with --debug. The log is opened
 * O_APPEND and each line is one write(), so concurrent km-shim calls sharing a log never interleave
 * within a line (containerd gives every call the same <bundle>/log.json).
 */
#ifndef SHIM_LOG_H
#define SHIM_LOG_H

#include <stdbool.h>

#include "km_error.h"
#include "shim_cli.h"

typedef enum shim_log_level { SHIM_LOG_DEBUG, SHIM_LOG_INFO, SHIM_LOG_WARN, SHIM_LOG_ERROR } shim_log_level_t;

/* Opens `path` (NULL: stderr) for appending. -1 with *err if it cannot be opened. */
int shim_log_open(const char *path, shim_log_format_t format, bool debug, km_err_t **err);

/* True if a log file (not stderr) is open. */
bool shim_log_to_file(void);

/* Writes one line at `level` (debug lines only with --debug). Never fails visibly. */
void shim_log(shim_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The line for `msg` at `level` in `format` at time `t` (unix seconds), newline included; caller
 * frees. For tests and for shim_log. */
char *shim_log_format_line(shim_log_format_t format, shim_log_level_t level, const char *msg, long long t);

/* The path given to shim_log_open (NULL for stderr): passed to the container's child. */
const char *shim_log_path(void);

void shim_log_close(void);

#endif
