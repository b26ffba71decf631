/*
 * km-with-args: stands in for km in the e2e suite so that every km a test starts gets extra
 * options (tests/e2e/run.sh runs the suite once per syscall path this way), without changing
 * what the program sees: no environment variable added, no fd left open, same pid (exec), the
 * program's argv as given.
 *
 * Installed as DIR/km (a copy, so that /proc/self/exe names DIR) beside DIR/km.real (a symlink to
 * the real km) and DIR/km.args (the extra options, one per line). The options go first. An option
 * of km.args whose name (up to '=') already appears among the caller's options (the words before
 * the first one not starting with '-') is left out: a test that asks for its own value keeps it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EXTRA 16

static void die(const char *what)
{
	fprintf(stderr, "km-with-args: %s: %s\n", what, strerror(errno));
	exit(127);
}

/* The directory this program was executed from (its copy's, not a symlink's). */
static void self_dir(char *dir, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", dir, size - 1);
	if (n < 0)
		die("/proc/self/exe");
	dir[n] = '\0';
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		die("/proc/self/exe has no directory");
	*slash = '\0';
}

/* Reads DIR/km.args into words[] (at most MAX_EXTRA); returns their number. */
static int read_args(const char *dir, char **words)
{
	char path[PATH_MAX + 16], buf[4096];
	snprintf(path, sizeof(path), "%s/km.args", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(path);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		die(path);
	close(fd);
	buf[n] = '\0';
	int count = 0;
	for (char *save = NULL, *w = strtok_r(buf, "\n", &save); w != NULL; w = strtok_r(NULL, "\n", &save)) {
		if (count == MAX_EXTRA) {
			errno = E2BIG;
			die(path);
		}
		words[count] = strdup(w);
		if (words[count] == NULL)
			die("strdup");
		count++;
	}
	return count;
}

/* True if the caller's own options (argv[1..] up to the first word not starting with '-')
 * already name the option OPT (compared up to its '='). */
static int caller_has(char **argv, const char *opt)
{
	size_t len = strcspn(opt, "=");
	for (int i = 1; argv[i] != NULL && argv[i][0] == '-'; i++) {
		if (strncmp(argv[i], opt, len) == 0 && (argv[i][len] == '=' || argv[i][len] == '\0'))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX], real[PATH_MAX + 16];
	char *extra[MAX_EXTRA];
	self_dir(dir, sizeof(dir));
	int nextra = read_args(dir, extra);
	char **args = calloc((size_t)argc + MAX_EXTRA + 1, sizeof(char *));
	if (args == NULL)
		die("calloc");
	int a = 0;
	args[a++] = argv[0];
	for (int i = 0; i < nextra; i++) {
		if (!caller_has(argv, extra[i]))
			args[a++] = extra[i];
	}
	for (int i = 1; i < argc; i++)
		args[a++] = argv[i];
	snprintf(real, sizeof(real), "%s/km.real", dir);
	execv(real, args);
	die(real);
}
