/* Command line parsing: see km_cli.h. */
#include "km_cli.h"
#include "km_fdtab.h"
#include "km_coredump.h"
#include "km_cpus.h"
#include "km_syscall_poll.h"

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
    "  --syscall-path=auto|exit|poll\n"
    "                      how the program's syscalls reach km: exit (a VM exit each), poll (a\n"
    "                      km thread per vCPU serves common calls without an exit), auto (the\n"
    "                      default: poll when km may use more than one CPU, with at most\n"
    "                      (those CPUs - 1) servers)\n"
    "  --kvm-device=PATH   KVM device to use (default /dev/kvm)\n"
    "  --snapshot=FILE     where the program's snapshots go (default kmsnap)\n"
    "  --coredump=FILE     write a core file here when the program dies of a signal that dumps\n"
    "                      core (default kmcore, and only if RLIMIT_CORE allows)\n"
    "  --mgmt=SOCKET       accept snapshot requests on this unix socket (docs/mgmt-protocol.md)\n"
    "  --guest-seccomp=FILE  filter the program's syscalls with these rules (docs/guest-seccomp.md)\n"
    "  --self-contained    snapshots hold every page, also those of program text and libraries\n"
    "                      still as their files have them (default: left to those files)\n"
    "  --snapshot-chain=N  deepest incremental snapshot, in parents below it (1-64, default 8);\n"
    "                      one that would be deeper is written whole\n"
    "open files in snapshots (docs/snapshot-format.md, NT_KM_FILES):\n"
    "  --tcp-established=repair|refuse|close\n"
    "                      an established TCP connection is saved so that it goes on after the\n"
    "                      resume (repair, the default: needs CAP_NET_ADMIN), makes the snapshot\n"
    "                      fail (refuse), or is resumed as reset by its peer (close)\n"
    "  --snapshot-file-max=SIZE  largest contents of a deleted file or memfd a snapshot carries\n"
    "                      (default 64M); a larger one makes the snapshot fail\n"
    "  --restore-missing=error|closed\n"
    "                      when resuming, an fd that cannot be rebuilt (its file gone or changed,\n"
    "                      its port taken...) fails the resume (error, the default) or is left\n"
    "                      closed with a warning (closed)\n"
    "descriptors passed in (km-shim; each is checked and moved out of the program's reach):\n"
    "  --kvm-fd=N          use this open KVM device instead of opening --kvm-device\n"
    "  --mgmt-fd=N         serve the management protocol on this listening unix socket\n"
    "  --ready-fd=N        write \"ready\\n\" here (and close it) once the program is loaded\n"
    "  --start-fd=N        then wait for one byte here before the program's first instruction\n"
    "                      (end of file instead: exit 0 without running it)\n"
    "  --snapshot-fd=N     resume the snapshot open at N (instead of naming a file)\n"
    "  --snapshot-parent-fd=N  with --snapshot-fd: the snapshot's parent (incremental snapshots),\n"
    "                      then its parent's, ... one per member of the chain, nearest first\n"
    "  --guest-seccomp-fd=N  the program's syscall filter rules, as --guest-seccomp\n"
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
	OPT_KVM_FD,
	OPT_MGMT_FD,
	OPT_READY_FD,
	OPT_START_FD,
	OPT_SNAPSHOT_FD,
	OPT_GUEST_SECCOMP_FD,
	OPT_GUEST_SECCOMP,
	OPT_TCP_ESTABLISHED,
	OPT_SNAPSHOT_FILE_MAX,
	OPT_RESTORE_MISSING,
	OPT_EXEC_STATE,
	OPT_SELF_CONTAINED,
	OPT_SNAPSHOT_CHAIN,
	OPT_SNAPSHOT_PARENT_FD,
	OPT_TEST_DIRTY_PROBE,
	OPT_SYSCALL_PATH,
	OPT_TEST_POLL_SPIN,
};

static const struct option options[] = {
    {"memory", required_argument, NULL, OPT_MEMORY}, {"env", required_argument, NULL, OPT_ENV},
    {"clear-env", no_argument, NULL, OPT_CLEAR_ENV}, {"trace", no_argument, NULL, OPT_TRACE},
    {"kvm-device", required_argument, NULL, OPT_KVM_DEV}, {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},     {"snapshot", required_argument, NULL, OPT_SNAPSHOT},
    {"coredump", required_argument, NULL, OPT_COREDUMP}, {"mgmt", required_argument, NULL, OPT_MGMT},
    {"inspect", no_argument, NULL, OPT_INSPECT},     {"verify", no_argument, NULL, OPT_VERIFY},
    {"no-seccomp", no_argument, NULL, OPT_NO_SECCOMP},
    {"kvm-fd", required_argument, NULL, OPT_KVM_FD}, {"mgmt-fd", required_argument, NULL, OPT_MGMT_FD},
    {"ready-fd", required_argument, NULL, OPT_READY_FD}, {"start-fd", required_argument, NULL, OPT_START_FD},
    {"snapshot-fd", required_argument, NULL, OPT_SNAPSHOT_FD},
    {"guest-seccomp-fd", required_argument, NULL, OPT_GUEST_SECCOMP_FD},
    {"guest-seccomp", required_argument, NULL, OPT_GUEST_SECCOMP},
    {"tcp-established", required_argument, NULL, OPT_TCP_ESTABLISHED},
    {"snapshot-file-max", required_argument, NULL, OPT_SNAPSHOT_FILE_MAX},
    {"restore-missing", required_argument, NULL, OPT_RESTORE_MISSING},
    {"exec-state", required_argument, NULL, OPT_EXEC_STATE}, /* internal: not in --help */
    {"self-contained", no_argument, NULL, OPT_SELF_CONTAINED},
    {"snapshot-chain", required_argument, NULL, OPT_SNAPSHOT_CHAIN},
    {"snapshot-parent-fd", required_argument, NULL, OPT_SNAPSHOT_PARENT_FD},
    {"test-dirty-probe", no_argument, NULL, OPT_TEST_DIRTY_PROBE}, /* km's tests: not in --help */
    {"syscall-path", required_argument, NULL, OPT_SYSCALL_PATH},
    {"test-poll-spin", required_argument, NULL, OPT_TEST_POLL_SPIN}, /* km's tests: not in --help */
    {NULL, 0, NULL, 0},
};

int km_cli_tcp_policy(const char *s)
{
	return strcmp(s, "repair") == 0 ? KM_TCP_REPAIR
	     : strcmp(s, "refuse") == 0 ? KM_TCP_REFUSE
	     : strcmp(s, "close") == 0  ? KM_TCP_CLOSE
					: -1;
}

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

/* The number of an --*-fd option: a decimal fd number, given once. */
static int parse_fd(const char *opt, const char *arg, int *out, km_err_t **err)
{
	char *end;
	if (arg[0] < '0' || arg[0] > '9')
		return km_err_set(err, 0, "%s: '%s' is not a file descriptor number", opt, arg);
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (errno != 0 || *end != '\0' || v > 0x7fffffff)
		return km_err_set(err, 0, "%s: '%s' is not a file descriptor number", opt, arg);
	if (*out >= 0)
		return km_err_set(err, 0, "%s given twice", opt);
	*out = (int)v;
	return 0;
}

/* The fds passed in must be distinct: one fd cannot be two things. */
static int check_fds(const km_cli_t *cli, km_err_t **err)
{
	const int fds[] = {cli->kvm_fd, cli->mgmt_fd, cli->ready_fd, cli->start_fd, cli->snapshot_fd,
			   cli->guest_seccomp_fd};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		for (size_t j = i + 1; j < sizeof(fds) / sizeof(fds[0]); j++)
			if (fds[i] >= 0 && fds[i] == fds[j])
				return km_err_set(err, 0, "fd %d is given for two --*-fd options", fds[i]);
	for (size_t i = 0; i < cli->nparent_fds; i++) {
		bool twice = false;
		for (size_t j = 0; j < sizeof(fds) / sizeof(fds[0]); j++)
			twice = twice || fds[j] == cli->parent_fds[i];
		for (size_t j = 0; j < i; j++)
			twice = twice || cli->parent_fds[j] == cli->parent_fds[i];
		if (twice)
			return km_err_set(err, 0, "fd %d is given for two --*-fd options", cli->parent_fds[i]);
	}
	if (cli->mgmt_fd >= 0 && cli->guest.mgmt_path != NULL)
		return km_err_set(err, 0, "--mgmt and --mgmt-fd exclude each other");
	if (cli->guest_seccomp_fd >= 0 && cli->guest_seccomp_path != NULL)
		return km_err_set(err, 0, "--guest-seccomp and --guest-seccomp-fd exclude each other");
	return 0;
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
	cli->guest.kvm_fd = -1;
	cli->guest.tcp_established = KM_TCP_REPAIR;
	cli->guest.restore_missing = KM_MISSING_ERROR;
	cli->guest.snapshot_file_max = KM_FDTAB_FILE_MAX_DEFAULT;
	cli->guest.syscall_path = KM_SYSCALL_PATH_AUTO;
	cli->guest.usable_cpus = km_usable_cpus();
	cli->kvm_fd = cli->mgmt_fd = cli->ready_fd = cli->start_fd = cli->snapshot_fd = cli->guest_seccomp_fd = -1;
	cli->exec_state_fd = -1;
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
		case OPT_TEST_DIRTY_PROBE:
			cli->guest.test_dirty_probe = true;
			break;
		case OPT_SYSCALL_PATH:
			cli->guest.syscall_path = km_syscall_path_parse(optarg);
			if (cli->guest.syscall_path < 0)
				return km_err_set(err, 0, "--syscall-path: '%s' is not auto, exit or poll", optarg);
			break;
		case OPT_TEST_POLL_SPIN: {
			/* Long bounds make a loaded test machine's servers answer every call. */
			char *end;
			unsigned long us = strtoul(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || us == 0 || us > 10000000)
				return km_err_set(err, 0, "--test-poll-spin: '%s' is not 1..10000000 (us)", optarg);
			cli->guest.poll_spin_us = (uint32_t)us;
			break;
		}
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
		case OPT_KVM_FD:
		case OPT_MGMT_FD:
		case OPT_READY_FD:
		case OPT_START_FD:
		case OPT_SNAPSHOT_FD:
		case OPT_GUEST_SECCOMP_FD: {
			int *slot = c == OPT_KVM_FD ? &cli->kvm_fd : c == OPT_MGMT_FD ? &cli->mgmt_fd
				  : c == OPT_READY_FD ? &cli->ready_fd : c == OPT_START_FD ? &cli->start_fd
				  : c == OPT_SNAPSHOT_FD ? &cli->snapshot_fd : &cli->guest_seccomp_fd;
			const char *opt = c == OPT_KVM_FD ? "--kvm-fd" : c == OPT_MGMT_FD ? "--mgmt-fd"
					: c == OPT_READY_FD ? "--ready-fd" : c == OPT_START_FD ? "--start-fd"
					: c == OPT_SNAPSHOT_FD ? "--snapshot-fd" : "--guest-seccomp-fd";
			if (parse_fd(opt, optarg, slot, err) < 0)
				return -1;
			break;
		}
		case OPT_SELF_CONTAINED:
			cli->guest.self_contained = true;
			break;
		case OPT_SNAPSHOT_CHAIN: {
			char *end;
			unsigned long n = optarg[0] >= '0' && optarg[0] <= '9' ? strtoul(optarg, &end, 10) : 0;
			if (n < 1 || n > KM_LAYERS_MAX_DEPTH || *end != '\0')
				return km_err_set(err, 0, "--snapshot-chain: '%s' is not a depth from 1 to %d", optarg,
						  KM_LAYERS_MAX_DEPTH);
			cli->guest.snapshot_chain = (uint32_t)n;
			break;
		}
		case OPT_SNAPSHOT_PARENT_FD: {
			if (cli->nparent_fds >= sizeof(cli->parent_fds) / sizeof(cli->parent_fds[0]))
				return km_err_set(err, 0, "--snapshot-parent-fd given more than %zu times",
						  sizeof(cli->parent_fds) / sizeof(cli->parent_fds[0]));
			int *slot = &cli->parent_fds[cli->nparent_fds];
			*slot = -1;
			if (parse_fd("--snapshot-parent-fd", optarg, slot, err) < 0)
				return -1;
			cli->nparent_fds++;
			break;
		}
		case OPT_EXEC_STATE:
			if (parse_fd("--exec-state", optarg, &cli->exec_state_fd, err) < 0)
				return -1;
			break;
		case OPT_GUEST_SECCOMP:
			if (optarg[0] == '\0')
				return km_err_set(err, 0, "option '--guest-seccomp' needs a file name");
			cli->guest_seccomp_path = optarg;
			break;
		case OPT_TCP_ESTABLISHED:
			if ((cli->guest.tcp_established = km_cli_tcp_policy(optarg)) < 0)
				return km_err_set(err, 0, "--tcp-established: '%s' is not repair, refuse or close", optarg);
			break;
		case OPT_RESTORE_MISSING:
			if (strcmp(optarg, "error") == 0)
				cli->guest.restore_missing = KM_MISSING_ERROR;
			else if (strcmp(optarg, "closed") == 0)
				cli->guest.restore_missing = KM_MISSING_CLOSED;
			else
				return km_err_set(err, 0, "--restore-missing: '%s' is not error or closed", optarg);
			break;
		case OPT_SNAPSHOT_FILE_MAX:
			if (km_parse_size(optarg, &size) < 0)
				return km_err_set(err, 0, "--snapshot-file-max: '%s' is not a size", optarg);
			cli->guest.snapshot_file_max = size;
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
	if (check_fds(cli, err) < 0)
		return -1;
	/* km's own command line for a program its guest exec'd: nothing else may come with it. */
	if (cli->exec_state_fd >= 0 && (cli->inspect || cli->snapshot_fd >= 0 || cli->kvm_fd >= 0 || cli->mgmt_fd >= 0 ||
					cli->ready_fd >= 0 || cli->start_fd >= 0 || cli->guest_seccomp_fd >= 0 ||
					cli->guest_seccomp_path != NULL || cli->guest.mgmt_path != NULL || cli->nenv > 0 ||
					cli->clear_env || optind >= argc))
		return km_err_set(err, 0, "--exec-state is km's own, at execve: it goes with nothing else");
	if (cli->nparent_fds > 0 && cli->snapshot_fd < 0)
		return km_err_set(err, 0, "--snapshot-parent-fd goes with --snapshot-fd");
	cli->guest.parent_fds = cli->parent_fds;
	cli->guest.nparent_fds = cli->nparent_fds;
	if (cli->snapshot_fd >= 0) {
		if (cli->inspect)
			return km_err_set(err, 0, "--snapshot-fd does not go with --inspect");
		if (optind < argc)
			return km_err_set(err, 0, "--snapshot-fd resumes a snapshot: no program may follow ('%s')",
					  argv[optind]);
		cli->prog_index = -1;
		return 0;
	}
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
