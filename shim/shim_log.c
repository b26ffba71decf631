/* km-shim's log: see shim_log.h. */
#include "shim_log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static const char *log_path;
static shim_log_format_t log_format = SHIM_LOG_TEXT;
static bool log_debug;

static const char *const level_names[] = {"debug", "info", "warning", "error"};

int shim_log_open(const char *path, shim_log_format_t format, bool debug, km_err_t **err)
{
	log_format = format;
	log_debug = debug;
	if (path == NULL || *path == '\0')
		return 0;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return km_err_set(err, errno, "opening the log %s", path);
	log_fd = fd;
	log_path = path;
	return 0;
}

bool shim_log_to_file(void)
{
	return log_path != NULL;
}

const char *shim_log_path(void)
{
	return log_path;
}

static void rfc3339(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "1970-01-01T00:00:00Z");
}

/* logrus quotes a text value with Go's %q: backslash escapes for quotes, backslashes and
 * control bytes. */
static char *go_quote(const char *s)
{
	size_t n = strlen(s);
	char *q = malloc(n * 4 + 3), *p = q;
	if (q == NULL)
		return NULL;
	*p++ = '"';
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			*p++ = '\\';
			*p++ = (char)c;
		} else if (c == '\n') {
			*p++ = '\\';
			*p++ = 'n';
		} else if (c == '\t') {
			*p++ = '\\';
			*p++ = 't';
		} else if (c < 0x20 || c == 0x7f) {
			p += sprintf(p, "\\x%02x", c);
		} else {
			*p++ = (char)c;
		}
	}
	*p++ = '"';
	*p = '\0';
	return q;
}

char *shim_log_format_line(shim_log_format_t format, shim_log_level_t level, const char *msg, long long t)
{
	char when[40];
	rfc3339(t, when, sizeof(when));
	char *line = NULL;
	if (format == SHIM_LOG_JSON) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "level", level_names[level], "msg", msg, "time", when);
		if (o == NULL) /* msg is not UTF-8: jansson refuses it */
			o = json_pack("{s:s, s:s, s:s}", "level", level_names[level], "msg",
				      "(message not valid UTF-8)", "time", when);
		char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (text != NULL && asprintf(&line, "%s\n", text) < 0)
			line = NULL;
		free(text);
	} else {
		char *q = go_quote(msg);
		if (q != NULL && asprintf(&line, "time=\"%s\" level=%s msg=%s\n", when, level_names[level], q) < 0)
			line = NULL;
		free(q);
	}
	return line;
}

void shim_log(shim_log_level_t level, const char *fmt, ...)
{
	if (level == SHIM_LOG_DEBUG && !log_debug)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	char *line = shim_log_format_line(log_format, level, msg, (long long)time(NULL));
	free(msg);
	if (line == NULL)
		return;
	size_t len = strlen(line);
	ssize_t w;
	do
		w = write(log_fd, line, len);
	while (w < 0 && errno == EINTR);
	free(line);
}

void shim_log_close(void)
{
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
	log_path = NULL;
}
