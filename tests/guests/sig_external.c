/*
 * Signals from outside (issue 7; tests/e2e/threads.sh sends them with `kill`).
 *
 *   sig_external handlers  prints "ready", then waits in pause(). SIGUSR1's handler prints
 *                          "usr1"; SIGTERM's prints "term", flushes stdout (which holds text
 *                          printed without a newline while fully buffered) and exits 0.
 *                          Expected: "ready", "usr1", "pending-term", exit 0.
 *   sig_external default   no handlers: prints "ready" and waits; signals whose default is to
 *                          be ignored (SIGWINCH, SIGCHLD, SIGURG, SIGCONT) change nothing, and
 *                          SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR2 end it as they would natively.
 *   sig_external self      the same handlers, signals (SIGWINCH, SIGUSR1, SIGTERM) sent by the
 *                          program itself (the plain e2e run): "usr1", "pending-term", exit 0.
 */
// E2E: self 0 self
#include <signal.h>

#include "check.h"

static void say(const char *s)
{
	(void)!write(1, s, strlen(s));
}

static void on_usr1(int sig)
{
	(void)sig;
	say("usr1\n");
}

static void on_term(int sig)
{
	(void)sig;
	/* Not async-signal-safe in general; here the main thread only ever sits in pause(). */
	fputs("term\n", stdout);
	fflush(stdout);
	_exit(0);
}

static void install(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void ready_then_wait(void)
{
	say("ready\n");
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "self";
	static char buf[4096];

	if (strcmp(mode, "default") == 0)
		ready_then_wait();
	if (strcmp(mode, "handlers") != 0 && strcmp(mode, "self") != 0) {
		printf("unknown mode %s\n", mode);
		return 2;
	}
	install(SIGUSR1, on_usr1);
	install(SIGTERM, on_term);
	/* Before any output (check.h's line buffering is a setvbuf too): fully buffered. */
	setvbuf(stdout, buf, _IOFBF, sizeof(buf));
	if (strcmp(mode, "handlers") == 0) {
		say("ready\n");
		printf("pending-"); /* stays in the buffer until the SIGTERM handler flushes it */
		for (;;)
			pause();
	}
	signal(SIGWINCH, SIG_DFL);
	raise(SIGWINCH); /* ignored by default */
	raise(SIGUSR1);
	printf("pending-");
	kill(getpid(), SIGTERM);
	return 3; /* not reached: the SIGTERM handler exits 0 */
}
