/* Command line parsing: see km_cli.h. */
#include "km_cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN_MEMORY (16ul << 20)

static const char usage[] =
    "usage: km [options] <program> [args...]\n"
    "       km [options] <snapshot>\n"
    "Runs a static Linux x86-64 program in its own KVM virtual machine, or resumes a snapshot.\n"
    "\n"
    "options:\n"
    "  --memory=SIZE       most memory the guest may map (e.g. 512M, 8G; default: host RAM + swap)\n"
    "  --env=NAME=VALUE    set a variable in the guest's environment (repeatable)\n"
    "  --clear-env         start the guest with an empty environment (then --env applies)\n"
    "  --trace             print every guest syscall with its arguments and result to stderr\n"
    "  --kvm-device=PATH   KVM device to use (default /dev/kvm)\n"
    "  --snapshot=FILE     where the program's snapshots go (default kmsnap)\n"
    "  --coredump=FILE     write a core file here when the program dies of a signal that dumps\n"
    "                      core (default kmcore, and only if RLIMIT_CORE allows)\n"
    "  --mgmt=SOCKET       accept snapshot requests on this unix socket (docs/mgmt-protocol.md)\n"
    "  --inspect           describe the snapshot given instead of running it\n"
    "  --verify            with --inspect: also check every saved memory page against the\n"
    "                      snapshot's checksums (exit status 1 if one differs)\n"
    "  --no-seccomp        run km without its syscall filter (debugging km only: a guest that\n"
    "                      breaks out of the VM then meets no second wall)\n"
    "  --help              this text\n"
    "  --version           km's version\n";

enum {
	OPT_MEMORY = 256,
	OPT_ENV,
	OPT_CLEAR_ENV,
	OPT_TRACE,
	OPT_KVM_DEV,
	OPT_HELP,
	OPT_VERSION,
	OPT_SNAPSHOT,
	OPT_COREDUMP,
	OPT_MGMT,
	OPT_INSPECT,
	OPT_VERIFY,
	OPT_NO_SECCOMP,
};

static const struct option options[] = {
    {"memory", required_argument, NULL, OPT_MEMORY}, {"env", required_argument, NULL, OPT_ENV},
    {"clear-env", no_argument, NULL, OPT_CLEAR_ENV}, {"trace", no_argument, NULL, OPT_TRACE},
    {"kvm-device", required_argument, NULL, OPT_KVM_DEV}, {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},     {"snapshot", required_argument, NULL, OPT_SNAPSHOT},
    {"coredump", required_argument, NULL, OPT_COREDUMP}, {"mgmt", required_argument, NULL, OPT_MGMT},
    {"inspect", no_argument, NULL, OPT_INSPECT},     {"verify", no_argument, NULL, OPT_VERIFY},
    {"no-seccomp", no_argument, NULL, OPT_NO_SECCOMP},
    {NULL, 0, NULL, 0},
};

int km_parse_size(const char *s, unsigned long *out)
{
	char *end;
	if (s[0] < '0' || s[0] > '9') /* strtoul would skip spaces and take "-1" as ULONG_MAX */
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'i' || *end == 'B' || *end == 'b')
		end += (end[0] == 'i' && (end[1] == 'B' || end[1] == 'b')) ? 2 : 1;
	if (*end != '\0' || (shift && v > (~0ul >> shift)))
		return -1;
	*out = v << shift;
	return 0;
}

static unsigned long default_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	unsigned long ram = pages > 0 && psize > 0 ? (unsigned long)pages * (unsigned long)psize : (8ul << 30);
	FILE *f = fopen("/proc/meminfo", "re");
	if (f != NULL) {
		char line[256];
		unsigned long kb;
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "SwapTotal: %lu kB", &kb) == 1)
				ram += kb << 10;
		fclose(f);
	}
	return ram;
}

static int parse_env(km_cli_t *cli, const char *arg, km_err_t **err)
{
	if (strchr(arg, '=') == NULL || arg[0] == '=')
		return km_err_set(err, 0, "--env needs NAME=VALUE, got '%s'", arg);
	const char **n = realloc(cli->env_set, (cli->nenv + 1) * sizeof(*n));
	if (n == NULL)
		return km_err_set(err, ENOMEM, "--env");
	cli->env_set = n;
	cli->env_set[cli->nenv++] = arg;
	return 0;
}

int km_cli_parse(km_cli_t *cli, int argc, char **argv, km_err_t **err)
{
	memset(cli, 0, sizeof(*cli));
	cli->guest.kvm_dev = "/dev/kvm";
	cli->guest.trace_fd = km_error_fd(); /* km's stderr, not the guest's fd 2 */
	cli->guest.memory = default_memory();
	cli->guest.snapshot_path = "kmsnap";
	cli->guest.coredump_path = "kmcore";
	opterr = 0;
	optind = 1;
	int c;
	/* '+': options end at the program name; everything after it belongs to the program.
	 * ':': a missing value is reported as ':' rather than as an unknown option. */
	while ((c = getopt_long(argc, argv, "+:", options, NULL)) != -1) {
		unsigned long size;
		switch (c) {
		case OPT_MEMORY:
			if (km_parse_size(optarg, &size) < 0 || size < MIN_MEMORY)
				return km_err_set(err, 0, "--memory: '%s' is not a size of at least 16M", optarg);
			cli->guest.memory = size;
			break;
		case OPT_ENV:
			if (parse_env(cli, optarg, err) < 0)
				return -1;
			break;
		case OPT_CLEAR_ENV:
			cli->clear_env = true;
			break;
		case OPT_TRACE:
			cli->guest.trace = true;
			break;
		case OPT_KVM_DEV:
			cli->guest.kvm_dev = optarg;
			break;
		case OPT_SNAPSHOT:
		case OPT_COREDUMP:
		case OPT_MGMT:
			if (optarg[0] == '\0')
				return km_err_set(err, 0, "option '%s' needs a file name", argv[optind - 1]);
			if (c == OPT_SNAPSHOT) {
				cli->guest.snapshot_path = optarg;
			} else if (c == OPT_COREDUMP) {
				cli->guest.coredump_path = optarg;
				cli->guest.coredump_forced = true;
			} else {
				cli->guest.mgmt_path = optarg;
			}
			break;
		case OPT_INSPECT:
			cli->inspect = true;
			break;
		case OPT_VERIFY:
			cli->verify = true;
			break;
		case OPT_NO_SECCOMP:
			cli->no_seccomp = true;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			cli->done = true;
			return 0;
		case OPT_VERSION:
			printf("km %s\n", KM_VERSION);
			cli->done = true;
			return 0;
		case ':':
			return km_err_set(err, 0, "option '%s' needs a value (see km --help)", argv[optind - 1]);
		default:
			/* A short option has no argv entry of its own to name (it may sit in a cluster). */
			if (optopt > 0 && optopt < 256)
				return km_err_set(err, 0, "unknown option '-%c' (see km --help)", optopt);
			/* glibc sets optopt to a long option's value when it was given an '=value' it
			 * does not take */
			if (optopt >= OPT_MEMORY)
				return km_err_set(err, 0, "option '%s' takes no value (see km --help)",
						  argv[optind - 1]);
			return km_err_set(err, 0, "unknown option '%s' (see km --help)", argv[optind - 1]);
		}
	}
	if (cli->verify && !cli->inspect)
		return km_err_set(err, 0, "--verify goes with --inspect (km --inspect --verify SNAPSHOT)");
	if (optind >= argc)
		return km_err_set(err, 0, cli->inspect ? "--inspect needs a snapshot file"
						       : "no program given (usage: km [options] <program> [args...])");
	cli->prog_index = optind;
	return 0;
}

/* Index of the entry in env[0..n) with the same NAME as `kv`, or -1. */
static long find_var(char **env, size_t n, const char *kv)
{
	size_t len = strcspn(kv, "=");
	for (size_t i = 0; i < n; i++)
		if (strncmp(env[i], kv, len) == 0 && env[i][len] == '=')
			return (long)i;
	return -1;
}

char **km_cli_guest_env(const km_cli_t *cli, char **host_env, km_err_t **err)
{
	size_t nhost = 0;
	if (!cli->clear_env)
		while (host_env[nhost] != NULL)
			nhost++;
	char **env = calloc(nhost + cli->nenv + 1, sizeof(*env));
	if (env == NULL) {
		km_err_set(err, ENOMEM, "building the guest environment");
		return NULL;
	}
	size_t n = 0;
	for (; n < nhost; n++)
		env[n] = host_env[n];
	for (size_t i = 0; i < cli->nenv; i++) {
		long at = find_var(env, n, cli->env_set[i]);
		if (at >= 0)
			env[at] = (char *)cli->env_set[i];
		else
			env[n++] = (char *)cli->env_set[i];
	}
	env[n] = NULL;
	return env;
}

void km_cli_free_env(char **env)
{
	free(env); /* the strings belong to km's environment and argv */
}

void km_cli_free(km_cli_t *cli)
{
	free(cli->env_set);
	cli->env_set = NULL;
}
