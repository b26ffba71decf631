/* km-shim's command line: see shim_cli.h. */
#include "shim_cli.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BIT(c) (1u << (c))

typedef enum opt_kind {
	OPT_BOOL,
	OPT_STR,
	OPT_INT, /* non-negative int */
	OPT_U64,
	OPT_I64,
	OPT_BYTES, /* shim_parse_bytes */
	OPT_DURATION,
	OPT_STRLIST, /* repeatable */
	OPT_LOGFMT,
	OPT_HELP,
} opt_kind_t;

typedef struct opt {
	const char *names; /* "bundle,b": the long name first, then aliases */
	opt_kind_t kind;
	size_t off; /* field in shim_args_t */
	ssize_t has_off; /* bool field set when given, or -1 */
	ssize_t count_off; /* OPT_STRLIST: int count field, else -1 */
	unsigned cmds; /* commands that take it; 0: global */
} opt_t;

#define F(field) offsetof(shim_args_t, field)
#define NOHAS (-1)

#define C_CREATE_LIKE (BIT(SHIM_CMD_CREATE) | BIT(SHIM_CMD_RUN) | BIT(SHIM_CMD_RESTORE))
#define C_CR (BIT(SHIM_CMD_CHECKPOINT) | BIT(SHIM_CMD_RESTORE))
#define C_ALL 0xffffffffu

static const opt_t global_opts[] = {
    {"root", OPT_STR, F(root), NOHAS, NOHAS, 0},
    {"log", OPT_STR, F(log), NOHAS, NOHAS, 0},
    {"log-format", OPT_LOGFMT, F(log_format), NOHAS, NOHAS, 0},
    {"debug", OPT_BOOL, F(debug), NOHAS, NOHAS, 0},
    {"systemd-cgroup", OPT_BOOL, F(systemd_cgroup), NOHAS, NOHAS, 0},
    {"criu", OPT_STR, F(criu), NOHAS, NOHAS, 0},
    {"rootless", OPT_STR, F(rootless), NOHAS, NOHAS, 0},
    {"version,v", OPT_BOOL, F(version), NOHAS, NOHAS, 0},
    {"help,h", OPT_BOOL, F(help), NOHAS, NOHAS, 0},
    {NULL, 0, 0, 0, 0, 0},
};

static const opt_t cmd_opts[] = {
    {"help,h", OPT_HELP, F(cmd_help), NOHAS, NOHAS, C_ALL},
    {"bundle,b", OPT_STR, F(bundle), NOHAS, NOHAS, C_CREATE_LIKE | BIT(SHIM_CMD_SPEC)},
    {"pid-file", OPT_STR, F(pid_file), NOHAS, NOHAS, C_CREATE_LIKE},
    {"console-socket", OPT_STR, F(console_socket), NOHAS, NOHAS, C_CREATE_LIKE},
    {"no-pivot", OPT_BOOL, F(no_pivot), NOHAS, NOHAS, C_CREATE_LIKE},
    {"no-new-keyring", OPT_BOOL, F(no_new_keyring), NOHAS, NOHAS, BIT(SHIM_CMD_CREATE) | BIT(SHIM_CMD_RUN)},
    {"preserve-fds", OPT_INT, F(preserve_fds), NOHAS, NOHAS, BIT(SHIM_CMD_CREATE) | BIT(SHIM_CMD_RUN)},
    {"detach,d", OPT_BOOL, F(detach), NOHAS, NOHAS, BIT(SHIM_CMD_RUN) | BIT(SHIM_CMD_RESTORE)},
    {"keep", OPT_BOOL, F(keep), NOHAS, NOHAS, BIT(SHIM_CMD_RUN)},
    {"no-subreaper", OPT_BOOL, F(no_subreaper), NOHAS, NOHAS, BIT(SHIM_CMD_RUN) | BIT(SHIM_CMD_RESTORE)},
    {"all,a", OPT_BOOL, F(all), NOHAS, NOHAS, BIT(SHIM_CMD_KILL)},
    {"force,f", OPT_BOOL, F(force), NOHAS, NOHAS, BIT(SHIM_CMD_DELETE)},
    {"format,f", OPT_STR, F(format), NOHAS, NOHAS, BIT(SHIM_CMD_LIST) | BIT(SHIM_CMD_PS)},
    {"quiet,q", OPT_BOOL, F(quiet), NOHAS, NOHAS, BIT(SHIM_CMD_LIST)},
    {"stats", OPT_BOOL, F(stats), NOHAS, NOHAS, BIT(SHIM_CMD_EVENTS)},
    {"interval", OPT_DURATION, F(interval_ns), NOHAS, NOHAS, BIT(SHIM_CMD_EVENTS)},
    {"memory,m", OPT_BYTES, F(memory), F(has_memory), NOHAS, BIT(SHIM_CMD_UPDATE)},
    {"memory-swap", OPT_BYTES, F(memory_swap), F(has_memory_swap), NOHAS, BIT(SHIM_CMD_UPDATE)},
    {"memory-reservation", OPT_BYTES, F(memory_reservation), F(has_memory_reservation), NOHAS,
     BIT(SHIM_CMD_UPDATE)},
    {"pids-limit", OPT_I64, F(pids_limit), F(has_pids_limit), NOHAS, BIT(SHIM_CMD_UPDATE)},
    {"cpu-shares,cpu-share", OPT_U64, F(cpu_shares), F(has_cpu_shares), NOHAS, BIT(SHIM_CMD_UPDATE)},
    {"cpu-quota", OPT_I64, F(cpu_quota), F(has_cpu_quota), NOHAS, BIT(SHIM_CMD_UPDATE)},
    {"cpu-period", OPT_U64, F(cpu_period), F(has_cpu_period), NOHAS, BIT(SHIM_CMD_UPDATE)},
    {"resources,r", OPT_STR, F(resources_file), NOHAS, NOHAS, BIT(SHIM_CMD_UPDATE)},
    {"image-path", OPT_STR, F(image_path), NOHAS, NOHAS, C_CR},
    {"work-path", OPT_STR, F(work_path), NOHAS, NOHAS, C_CR},
    {"parent-path", OPT_STR, F(parent_path), NOHAS, NOHAS, BIT(SHIM_CMD_CHECKPOINT)},
    {"leave-running", OPT_BOOL, F(leave_running), NOHAS, NOHAS, BIT(SHIM_CMD_CHECKPOINT)},
    {"tcp-established", OPT_BOOL, F(tcp_established), NOHAS, NOHAS, C_CR},
    {"ext-unix-sk", OPT_BOOL, F(ext_unix_sk), NOHAS, NOHAS, C_CR},
    {"shell-job", OPT_BOOL, F(shell_job), NOHAS, NOHAS, C_CR},
    {"file-locks", OPT_BOOL, F(file_locks), NOHAS, NOHAS, C_CR},
    {"pre-dump", OPT_BOOL, F(pre_dump), NOHAS, NOHAS, BIT(SHIM_CMD_CHECKPOINT)},
    {"auto-dedup", OPT_BOOL, F(auto_dedup), NOHAS, NOHAS, C_CR},
    {"lazy-pages", OPT_BOOL, F(lazy_pages), NOHAS, NOHAS, C_CR},
    {"status-fd", OPT_INT, F(status_fd), F(has_status_fd), NOHAS, BIT(SHIM_CMD_CHECKPOINT)},
    {"page-server", OPT_STR, F(page_server), NOHAS, NOHAS, BIT(SHIM_CMD_CHECKPOINT)},
    {"manage-cgroups-mode", OPT_STR, F(manage_cgroups_mode), NOHAS, NOHAS, C_CR},
    {"empty-ns", OPT_STRLIST, F(empty_ns), NOHAS, F(n_empty_ns), C_CR},
    {"lsm-profile", OPT_STR, F(lsm_profile), NOHAS, NOHAS, BIT(SHIM_CMD_RESTORE)},
    {"lsm-mount-context", OPT_STR, F(lsm_mount_context), NOHAS, NOHAS, BIT(SHIM_CMD_RESTORE)},
    {"rootless", OPT_STR, F(rootless), NOHAS, NOHAS, BIT(SHIM_CMD_SPEC)},
    {NULL, 0, 0, 0, 0, 0},
};

static const char *const cmd_names[SHIM_CMD_COUNT] = {
    [SHIM_CMD_CREATE] = "create",	[SHIM_CMD_START] = "start",	  [SHIM_CMD_STATE] = "state",
    [SHIM_CMD_KILL] = "kill",		[SHIM_CMD_DELETE] = "delete",	  [SHIM_CMD_RUN] = "run",
    [SHIM_CMD_LIST] = "list",		[SHIM_CMD_PS] = "ps",		  [SHIM_CMD_PAUSE] = "pause",
    [SHIM_CMD_RESUME] = "resume",	[SHIM_CMD_EVENTS] = "events",	  [SHIM_CMD_UPDATE] = "update",
    [SHIM_CMD_FEATURES] = "features", [SHIM_CMD_SPEC] = "spec",	  [SHIM_CMD_CHECKPOINT] = "checkpoint",
    [SHIM_CMD_RESTORE] = "restore",	[SHIM_CMD_EXEC] = "exec",
};

/* How many positional arguments (the id included) each command takes. */
static const struct {
	int min, max;
} cmd_args[SHIM_CMD_COUNT] = {
    [SHIM_CMD_CREATE] = {1, 1},	  [SHIM_CMD_START] = {1, 1},   [SHIM_CMD_STATE] = {1, 1},
    [SHIM_CMD_KILL] = {1, 2},	  [SHIM_CMD_DELETE] = {1, 1},  [SHIM_CMD_RUN] = {1, 1},
    [SHIM_CMD_LIST] = {0, 0},	  [SHIM_CMD_PS] = {1, INT_MAX}, [SHIM_CMD_PAUSE] = {1, 1},
    [SHIM_CMD_RESUME] = {1, 1},	  [SHIM_CMD_EVENTS] = {1, 1},  [SHIM_CMD_UPDATE] = {1, 1},
    [SHIM_CMD_FEATURES] = {0, 0}, [SHIM_CMD_SPEC] = {0, 0},    [SHIM_CMD_CHECKPOINT] = {1, 1},
    [SHIM_CMD_RESTORE] = {1, 1},  [SHIM_CMD_EXEC] = {0, INT_MAX},
};

const char *shim_cmd_name(shim_cmd_t c)
{
	return c > SHIM_CMD_NONE && c < SHIM_CMD_COUNT ? cmd_names[c] : NULL;
}

/* --- values --------------------------------------------------------------------------------- */

static const struct {
	const char *name;
	int num;
} signal_names[] = {
    {"HUP", SIGHUP},	 {"INT", SIGINT},	{"QUIT", SIGQUIT},     {"ILL", SIGILL},	    {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT},	 {"IOT", SIGIOT},	{"BUS", SIGBUS},       {"FPE", SIGFPE},	    {"KILL", SIGKILL},
    {"USR1", SIGUSR1},	 {"SEGV", SIGSEGV},	{"USR2", SIGUSR2},     {"PIPE", SIGPIPE},   {"ALRM", SIGALRM},
    {"TERM", SIGTERM},	 {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},     {"CLD", SIGCHLD},    {"CONT", SIGCONT},
    {"STOP", SIGSTOP},	 {"TSTP", SIGTSTP},	{"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},   {"URG", SIGURG},
    {"XCPU", SIGXCPU},	 {"XFSZ", SIGXFSZ},	{"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},   {"WINCH", SIGWINCH},
    {"IO", SIGIO},	 {"POLL", SIGPOLL},	{"PWR", SIGPWR},       {"SYS", SIGSYS},
};

/* The kernel's real-time range (glibc reserves 32 and 33 for itself; runc's names follow it). */
#define RT_MIN 34
#define RT_MAX 64

/* Parses a whole decimal number in [lo, hi]. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int shim_parse_signal(const char *s, int *sig, km_err_t **err)
{
	long v;
	if (s != NULL && isdigit((unsigned char)*s)) {
		if (parse_long(s, 0, RT_MAX, &v) != 0)
			return km_err_set(err, 0, "invalid signal \"%s\": not a signal number (0-%d)", s, RT_MAX);
		*sig = (int)v;
		return 0;
	}
	const char *n = s != NULL ? s : "";
	if (strncasecmp(n, "SIG", 3) == 0)
		n += 3;
	for (size_t i = 0; i < sizeof(signal_names) / sizeof(signal_names[0]); i++) {
		if (strcasecmp(n, signal_names[i].name) == 0) {
			*sig = signal_names[i].num;
			return 0;
		}
	}
	if (strncasecmp(n, "RTMIN", 5) == 0 || strncasecmp(n, "RTMAX", 5) == 0) {
		bool min = strncasecmp(n, "RTMIN", 5) == 0;
		const char *t = n + 5;
		long off = 0;
		if (*t != '\0') {
			if (*t != (min ? '+' : '-') || parse_long(t + 1, 1, RT_MAX - RT_MIN, &off) != 0)
				goto bad;
		}
		*sig = min ? RT_MIN + (int)off : RT_MAX - (int)off;
		return 0;
	}
bad:
	return km_err_set(err, 0, "unknown signal \"%s\"", s != NULL ? s : "");
}

int shim_parse_bytes(const char *s, int64_t *out, km_err_t **err)
{
	if (s != NULL && strcmp(s, "-1") == 0) {
		*out = -1;
		return 0;
	}
	if (s == NULL || !isdigit((unsigned char)*s))
		return km_err_set(err, 0, "invalid size \"%s\"", s != NULL ? s : "");
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0)
		return km_err_set(err, 0, "invalid size \"%s\"", s);
	static const char *const units = "bkmgtp";
	double mult = 1;
	if (*end != '\0') {
		const char *u = strchr(units, tolower((unsigned char)*end));
		if (u == NULL)
			return km_err_set(err, 0, "invalid size \"%s\": unknown unit", s);
		for (long i = 0; i < u - units; i++)
			mult *= 1024;
		end++;
		if (u != units && (*end == 'b' || *end == 'B'))
			end++;
		if (u != units && (*end == 'i' || *end == 'I') && (end[1] == 'b' || end[1] == 'B'))
			end += 2;
		if (*end != '\0')
			return km_err_set(err, 0, "invalid size \"%s\": unknown unit", s);
	}
	double bytes = v * mult;
	if (bytes >= 9.2e18)
		return km_err_set(err, 0, "invalid size \"%s\": too large", s);
	*out = (int64_t)bytes;
	return 0;
}

int shim_parse_duration(const char *s, uint64_t *ns, km_err_t **err)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {{"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
	if (s == NULL || *s == '\0')
		return km_err_set(err, 0, "invalid duration \"\"");
	const char *p = s;
	double total = 0;
	char *end;
	double v = strtod(p, &end);
	if (end != p && *end == '\0' && isdigit((unsigned char)*p)) {
		total = v * 1e9;
		goto done;
	}
	while (*p != '\0') {
		if (!isdigit((unsigned char)*p) && *p != '.')
			return km_err_set(err, 0, "invalid duration \"%s\"", s);
		v = strtod(p, &end);
		if (end == p)
			return km_err_set(err, 0, "invalid duration \"%s\"", s);
		p = end;
		size_t best = 0;
		double mult = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, l) == 0 && l > best) {
				best = l;
				mult = units[i].ns;
			}
		}
		if (best == 0)
			return km_err_set(err, 0, "invalid duration \"%s\": missing unit", s);
		p += best;
		total += v * mult;
	}
done:
	if (total < 0 || total >= 1.8e19)
		return km_err_set(err, 0, "invalid duration \"%s\"", s);
	*ns = (uint64_t)total;
	return 0;
}

/* --- flags ---------------------------------------------------------------------------------- */

/* True if `name` (without dashes or value) is one of the opt's names. */
static bool opt_named(const opt_t *o, const char *name, size_t len)
{
	const char *n = o->names;
	while (*n != '\0') {
		size_t l = strcspn(n, ",");
		if (l == len && strncmp(n, name, len) == 0)
			return true;
		n += l;
		if (*n == ',')
			n++;
	}
	return false;
}

static const opt_t *find_opt(const opt_t *table, shim_cmd_t cmd, const char *name, size_t len)
{
	for (const opt_t *o = table; o->names != NULL; o++) {
		if ((o->cmds == 0 || (o->cmds & BIT(cmd))) && opt_named(o, name, len))
			return o;
	}
	return NULL;
}

static int parse_bool_value(const char *v, bool *b)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "t") == 0 || strcmp(v, "TRUE") == 0 ||
	    strcmp(v, "True") == 0 || strcmp(v, "T") == 0) {
		*b = true;
		return 0;
	}
	if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "f") == 0 || strcmp(v, "FALSE") == 0 ||
	    strcmp(v, "False") == 0 || strcmp(v, "F") == 0) {
		*b = false;
		return 0;
	}
	return -1;
}

static int push_str(char ***list, int *n, const char *s)
{
	char **l = realloc(*list, (size_t)(*n + 2) * sizeof(*l));
	if (l == NULL)
		return -1;
	l[(*n)++] = (char *)s;
	l[*n] = NULL;
	*list = l;
	return 0;
}

/* Stores value `v` of option o (named `flag` in messages) into a. */
static int set_opt(shim_args_t *a, const opt_t *o, const char *flag, const char *v, km_err_t **err)
{
	char *base = (char *)a;
	long l;
	switch (o->kind) {
	case OPT_BOOL:
	case OPT_HELP:
		if (parse_bool_value(v, (bool *)(base + o->off)) != 0)
			return km_err_set(err, 0, "invalid boolean value \"%s\" for flag %s", v, flag);
		break;
	case OPT_STR:
		*(const char **)(base + o->off) = v;
		break;
	case OPT_INT:
		if (parse_long(v, 0, INT_MAX, &l) != 0)
			return km_err_set(err, 0, "invalid value \"%s\" for flag %s: not a non-negative number", v, flag);
		*(int *)(base + o->off) = (int)l;
		break;
	case OPT_U64:
	case OPT_I64: {
		char *end;
		errno = 0;
		if (*v == '\0' || isspace((unsigned char)*v))
			return km_err_set(err, 0, "invalid value \"%s\" for flag %s", v, flag);
		if (o->kind == OPT_U64) {
			if (*v == '-')
				return km_err_set(err, 0, "invalid value \"%s\" for flag %s: must not be negative", v, flag);
			*(uint64_t *)(base + o->off) = strtoull(v, &end, 10);
		} else {
			*(int64_t *)(base + o->off) = strtoll(v, &end, 10);
		}
		if (errno != 0 || *end != '\0')
			return km_err_set(err, 0, "invalid value \"%s\" for flag %s", v, flag);
		break;
	}
	case OPT_BYTES:
		if (shim_parse_bytes(v, (int64_t *)(base + o->off), err) != 0)
			return km_err_wrap(err, "flag %s", flag);
		break;
	case OPT_DURATION:
		if (shim_parse_duration(v, (uint64_t *)(base + o->off), err) != 0)
			return km_err_wrap(err, "flag %s", flag);
		break;
	case OPT_STRLIST:
		if (push_str((char ***)(base + o->off), (int *)(base + o->count_off), v) != 0)
			return km_err_set(err, ENOMEM, "flag %s", flag);
		break;
	case OPT_LOGFMT:
		if (strcmp(v, "text") == 0)
			a->log_format = SHIM_LOG_TEXT;
		else if (strcmp(v, "json") == 0)
			a->log_format = SHIM_LOG_JSON;
		else
			return km_err_set(err, 0, "invalid log-format \"%s\" (text or json)", v);
		break;
	}
	if (o->has_off >= 0)
		*(bool *)(base + o->has_off) = true;
	return 0;
}

/* Parses the flag argv[*i] (it starts with '-' and is not "-" or "--"). */
static int parse_flag(const opt_t *table, shim_cmd_t cmd, shim_args_t *a, int argc, char **argv, int *i,
		      km_err_t **err)
{
	const char *arg = argv[*i];
	const char *name = arg + (arg[1] == '-' ? 2 : 1);
	const char *eq = strchr(name, '=');
	size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
	const opt_t *o = find_opt(table, cmd, name, len);
	if (o == NULL || len == 0)
		return km_err_set(err, 0, "flag provided but not defined: -%.*s", (int)len, name);
	if (eq != NULL)
		return set_opt(a, o, arg, eq + 1, err);
	if (o->kind == OPT_BOOL || o->kind == OPT_HELP)
		return set_opt(a, o, arg, "true", err);
	if (*i + 1 >= argc)
		return km_err_set(err, 0, "flag needs an argument: %s", arg);
	(*i)++;
	return set_opt(a, o, arg, argv[*i], err);
}

static bool is_flag(const char *s)
{
	return s[0] == '-' && s[1] != '\0' && strcmp(s, "--") != 0;
}

static shim_cmd_t find_cmd(const char *s)
{
	for (int c = SHIM_CMD_NONE + 1; c < SHIM_CMD_COUNT; c++)
		if (strcmp(cmd_names[c], s) == 0)
			return (shim_cmd_t)c;
	return SHIM_CMD_NONE;
}

static int check_positionals(shim_args_t *a, char **pos, int npos, km_err_t **err)
{
	const char *name = cmd_names[a->cmd];
	if (!a->cmd_help && (npos < cmd_args[a->cmd].min || npos > cmd_args[a->cmd].max)) {
		if (cmd_args[a->cmd].min == cmd_args[a->cmd].max)
			return km_err_set(err, 0, "\"%s\" requires exactly %d argument(s)", name, cmd_args[a->cmd].min);
		if (npos < cmd_args[a->cmd].min)
			return km_err_set(err, 0, "\"%s\" requires a minimum of %d argument(s)", name,
					  cmd_args[a->cmd].min);
		return km_err_set(err, 0, "\"%s\" requires a maximum of %d argument(s)", name, cmd_args[a->cmd].max);
	}
	if (npos > 0 && a->cmd != SHIM_CMD_LIST && a->cmd != SHIM_CMD_FEATURES && a->cmd != SHIM_CMD_SPEC) {
		a->id = pos[0];
		a->rest = pos + 1;
		a->n_rest = npos - 1;
	}
	if (a->cmd == SHIM_CMD_KILL && !a->cmd_help && a->n_rest == 1 &&
	    shim_parse_signal(a->rest[0], &a->signal, err) != 0)
		return -1;
	return 0;
}

static char *const empty_list[1] = {NULL};

int shim_cli_parse(int argc, char **argv, shim_args_t *a, km_err_t **err)
{
	memset(a, 0, sizeof(*a));
	a->root = SHIM_DEFAULT_ROOT;
	a->signal = SIGTERM;
	a->interval_ns = 5000000000ull;
	a->rest = (char **)empty_list;
	a->empty_ns = (char **)empty_list;
	int i = 1;
	for (; i < argc && is_flag(argv[i]); i++)
		if (parse_flag(global_opts, SHIM_CMD_NONE, a, argc, argv, &i, err) != 0)
			return -1;
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (i >= argc)
		return 0; /* no command: --help, --version, or the caller prints usage */
	if (strcmp(argv[i], "help") == 0) {
		a->help = true;
		if (i + 1 < argc && (a->cmd = find_cmd(argv[i + 1])) != SHIM_CMD_NONE)
			a->cmd_help = true;
		return 0;
	}
	a->cmd = find_cmd(argv[i]);
	if (a->cmd == SHIM_CMD_NONE)
		return km_err_set(err, 0, "unknown command \"%s\" (see km-shim --help)", argv[i]);
	i++;
	char **pos = calloc((size_t)(argc - i + 1), sizeof(*pos));
	if (pos == NULL)
		return km_err_set(err, ENOMEM, "parsing the command line");
	a->owned_ = pos;
	int npos = 0;
	bool flags_done = false;
	for (; i < argc; i++) {
		/* exec's arguments after the id are the program's: never flags of ours */
		if (a->cmd == SHIM_CMD_EXEC && npos > 0)
			flags_done = true;
		if (!flags_done && strcmp(argv[i], "--") == 0) {
			flags_done = true;
			continue;
		}
		if (!flags_done && is_flag(argv[i])) {
			if (a->cmd == SHIM_CMD_EXEC) {
				/* exec is refused whatever its flags say; only its --help is answered */
				if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
				    strcmp(argv[i], "-help") == 0)
					a->cmd_help = true;
				continue;
			}
			if (parse_flag(cmd_opts, a->cmd, a, argc, argv, &i, err) != 0)
				return km_err_wrap(err, "%s", cmd_names[a->cmd]);
			continue;
		}
		pos[npos++] = argv[i];
	}
	if (a->cmd == SHIM_CMD_EXEC)
		return 0;
	return check_positionals(a, pos, npos, err);
}

void shim_args_free(shim_args_t *a)
{
	free(a->owned_);
	if (a->empty_ns != empty_list)
		free(a->empty_ns);
	memset(a, 0, sizeof(*a));
}

/* --- usage ---------------------------------------------------------------------------------- */

static const char global_usage[] =
    "usage: km-shim [global options] command [command options] [arguments...]\n"
    "An OCI runtime with runc's command line that runs each container's program under km.\n"
    "\n"
    "commands:\n"
    "  create      create a container (km loads the program and waits for start)\n"
    "  start       start a created container\n"
    "  run         create and start a container (waits for it unless --detach)\n"
    "  state       print the OCI state of a container\n"
    "  kill        send a signal to the container's program\n"
    "  delete      delete a container (--force: also a running one)\n"
    "  list        list containers\n"
    "  ps          the host pids of a container\n"
    "  pause       pause a container\n"
    "  resume      resume a paused container\n"
    "  events      container statistics (--stats: once)\n"
    "  update      change a container's resource limits\n"
    "  features    what km-shim supports, as JSON\n"
    "  spec        write a starter config.json for km\n"
    "  checkpoint  snapshot a container into an image directory\n"
    "  restore     create and start a container from an image directory\n"
    "  exec        (not supported yet)\n"
    "\n"
    "global options:\n"
    "  --root DIR            state directory (default " SHIM_DEFAULT_ROOT ")\n"
    "  --log FILE            log file (default: stderr)\n"
    "  --log-format FORMAT   text or json (default text)\n"
    "  --debug               also log debug messages\n"
    "  --systemd-cgroup      refused: km-shim manages cgroups itself\n"
    "  --version, -v         print the version\n"
    "  --help, -h            this text\n"
    "Flags take the forms --flag value, --flag=value and -flag; see docs/cli.md.\n";

static const char *const cmd_usage[SHIM_CMD_COUNT] = {
    [SHIM_CMD_CREATE] = "usage: km-shim create [--bundle DIR] [--pid-file FILE] [--console-socket SOCKET]\n"
			"                      [--no-pivot] [--no-new-keyring] [--preserve-fds N] ID\n"
			"Creates container ID from the bundle (default: the current directory): km loads\n"
			"the program and waits; `km-shim start ID` lets it run.\n",
    [SHIM_CMD_START] = "usage: km-shim start ID\nStarts a created container.\n",
    [SHIM_CMD_STATE] = "usage: km-shim state ID\nPrints the container's OCI state as JSON.\n",
    [SHIM_CMD_KILL] = "usage: km-shim kill [--all] ID [SIGNAL]\n"
		      "Sends SIGNAL (a number or a name, with or without SIG; default SIGTERM) to the\n"
		      "container's program.\n",
    [SHIM_CMD_DELETE] = "usage: km-shim delete [--force] ID\n"
			"Deletes a stopped container; --force kills a running one first.\n",
    [SHIM_CMD_RUN] = "usage: km-shim run [--bundle DIR] [--detach] [--pid-file FILE] [--keep]\n"
		     "                   [--console-socket SOCKET] [--no-pivot] [--no-new-keyring]\n"
		     "                   [--preserve-fds N] ID\n"
		     "Creates and starts a container; without --detach waits for it and exits with its\n"
		     "status, then deletes it (unless --keep).\n",
    [SHIM_CMD_LIST] = "usage: km-shim list [--format table|json] [--quiet]\nLists the containers.\n",
    [SHIM_CMD_PS] = "usage: km-shim ps [--format table|json] ID\nThe container's host pids.\n",
    [SHIM_CMD_PAUSE] = "usage: km-shim pause ID\nPauses the container's program.\n",
    [SHIM_CMD_RESUME] = "usage: km-shim resume ID\nResumes a paused container.\n",
    [SHIM_CMD_EVENTS] = "usage: km-shim events [--stats] [--interval DURATION] ID\n"
			"Prints the container's statistics as JSON, once with --stats, else every interval.\n",
    [SHIM_CMD_UPDATE] = "usage: km-shim update [--memory SIZE] [--memory-swap SIZE] [--memory-reservation SIZE]\n"
			"                      [--pids-limit N] [--cpu-shares N] [--cpu-quota N] [--cpu-period N]\n"
			"                      [-r resources.json] ID\n"
			"Changes the container's resource limits.\n",
    [SHIM_CMD_FEATURES] = "usage: km-shim features\nPrints what km-shim supports, as JSON.\n",
    [SHIM_CMD_SPEC] = "usage: km-shim spec [--bundle DIR]\nWrites a starter config.json for km.\n",
    [SHIM_CMD_CHECKPOINT] =
	"usage: km-shim checkpoint [--image-path DIR] [--work-path DIR] [--leave-running] [--pre-dump]\n"
	"                          [--parent-path PARENT] ID\n"
	"Snapshots the container into DIR (default <bundle>/checkpoint): km.snap, km-checkpoint.json\n"
	"and inventory.img. Without --leave-running (or --pre-dump, which leaves it running too) the\n"
	"container ends. --parent-path: the previous image directory (relative to DIR, or absolute):\n"
	"an incremental snapshot holding only what changed since it (restore finds the chain).\n"
	"Established TCP connections fail the checkpoint unless --tcp-established (then km saves\n"
	"them with TCP_REPAIR).\n"
	"Accepted and ignored: --work-path --ext-unix-sk --shell-job --file-locks\n"
	"--manage-cgroups-mode --empty-ns --auto-dedup --status-fd.\n"
	"Refused: --lazy-pages --page-server.\n",
    [SHIM_CMD_RESTORE] =
	"usage: km-shim restore [--image-path DIR] [--work-path DIR] [--bundle DIR] [--detach]\n"
	"                       [--pid-file FILE] [--console-socket SOCKET] [--no-subreaper]\n"
	"                       [--no-pivot] ID\n"
	"Creates container ID from the bundle and resumes the checkpoint in it; without --detach\n"
	"waits for it and exits with its status.\n"
	"Accepted and ignored: --work-path --tcp-established --ext-unix-sk --shell-job --file-locks\n"
	"--manage-cgroups-mode --empty-ns --auto-dedup --no-subreaper --lsm-profile --lsm-mount-context.\n"
	"Refused: --lazy-pages.\n",
    [SHIM_CMD_EXEC] = "usage: km-shim exec ...\nNot supported: km cannot run a second process in a container yet.\n",
};

const char *shim_cli_usage(shim_cmd_t c)
{
	if (c > SHIM_CMD_NONE && c < SHIM_CMD_COUNT && cmd_usage[c] != NULL)
		return cmd_usage[c];
	return global_usage;
}
