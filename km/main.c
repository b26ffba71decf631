/* km: run a static Linux x86-64 program in its own KVM virtual machine. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "km_cli.h"
#include "km_guest.h"

extern char **environ;

/* Tells how the guest ended, as a shell would, and gives km's exit status. */
static int report_end(const km_guest_t *g, const char *prog)
{
	if (g->term_signal == 0)
		return g->exit_status & 0xff;
	int sig = g->term_signal;
	if (sig != SIGPIPE) /* shells stay quiet about broken pipes; so does km */
		fprintf(stderr, "km: %s: killed by SIG%s (%s) at rip %#lx, fault address %#lx\n", prog,
			sigabbrev_np(sig) ?: "?", strsignal(sig), (unsigned long)g->fault_rip,
			(unsigned long)g->fault_addr);
	return 128 + sig;
}

/* Signals km was started with ignored, as a mask (bit sig-1). */
static uint64_t inherited_ignored(void)
{
	uint64_t mask = 0;
	for (int sig = 1; sig < 64; sig++) {
		struct sigaction sa;
		if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			mask |= 1ull << (sig - 1);
	}
	return mask;
}

static int run(km_cli_t *cli, int argc, char **argv, km_err_t **err)
{
	(void)argc;
	const char *prog = argv[cli->prog_index];
	char **env = km_cli_guest_env(cli, environ, err);
	if (env == NULL)
		return -1;
	km_guest_t g;
	int status = -1;
	if (km_guest_create(&g, &cli->guest, err) == 0 &&
	    km_guest_load_program(&g, prog, &argv[cli->prog_index], env, err) == 0 && km_guest_run(&g, err) == 0)
		status = report_end(&g, prog);
	km_guest_destroy(&g);
	km_cli_free_env(env);
	return status;
}

int main(int argc, char **argv)
{
	km_err_t *err = NULL;
	km_cli_t cli;
	int status = 1;
	uint64_t ignored = inherited_ignored();
	/* A guest writing to a closed pipe must see EPIPE (and km decides about SIGPIPE), not kill km. */
	signal(SIGPIPE, SIG_IGN);
	if (km_cli_parse(&cli, argc, argv, &err) == 0) {
		cli.guest.ignored_signals = ignored;
		status = cli.done ? 0 : run(&cli, argc, argv, &err);
	}
	if (status < 0 || err != NULL) {
		fprintf(stderr, "km: %s\n", err != NULL ? err->msg : "failed");
		status = 1;
	}
	km_err_free(&err);
	km_cli_free(&cli);
	return status;
}
