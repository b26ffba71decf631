/*
 * A signal storm from outside (tests/e2e/threads.sh): 4 threads compute a checksum over memory
 * they keep rewriting while SIGUSR1 (standard: merged while pending) and SIGRTMIN+1 (queued)
 * handlers count arrivals and scribble on the stack and FPU registers. SIGTERM's handler sets a
 * flag; the program then prints the checksum (what an undisturbed run prints: signals must not
 * change what the program computes) and whether both handlers ran. Prints "ready RT" first (RT:
 * the real-time signal's number, which differs between libcs).
 *
 *   sig_storm ROUNDS     compute ROUNDS rounds per thread, then wait for SIGTERM
 *   sig_storm ROUNDS q   no storm: compute and print the sum
 */
// E2E: quiet 0 20 q
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"

#define NTHR 4
#define WORDS 4096

static volatile sig_atomic_t usr1, rt, term;
static uint64_t mem[NTHR][WORDS];
static uint64_t sums[NTHR];
static long rounds;

/* Handlers that use the stack and the FPU: anything they leave behind would show in the sums. */
static void on_usr1(int sig)
{
	(void)sig;
	volatile double d = 1.5;
	for (int i = 0; i < 8; i++)
		d = d * 1.25 + 0.5;
	usr1++;
}

static void on_rt(int sig)
{
	(void)sig;
	volatile char junk[256];
	for (int i = 0; i < 256; i++)
		junk[i] = (char)i;
	rt += junk[255] == (char)255;
}

static void on_term(int sig)
{
	(void)sig;
	term = 1;
}

static void *work(void *arg)
{
	long id = (long)arg;
	uint64_t h = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
	double f = 1.0;
	for (long r = 0; r < rounds; r++)
		for (int i = 0; i < WORDS; i++) {
			h = (h ^ mem[id][i]) * 0x100000001b3ull;
			f = f * 1.0000001 + (double)(h & 0xff) / 1e9;
			mem[id][i] = h + (uint64_t)r;
		}
	sums[id] = h ^ (uint64_t)(f * 1e6);
	return NULL;
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = SA_RESTART;
	sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv)
{
	rounds = argc > 1 ? atol(argv[1]) : 2000;
	bool quiet = argc > 2; /* no storm expected: the e2e self-check of the sums */
	handle(SIGUSR1, on_usr1);
	handle(SIGRTMIN + 1, on_rt);
	handle(SIGTERM, on_term);
	printf("ready %d\n", SIGRTMIN + 1);
	fflush(stdout);
	pthread_t t[NTHR];
	for (long i = 0; i < NTHR; i++)
		pthread_create(&t[i], NULL, work, (void *)i);
	for (int i = 0; i < NTHR; i++)
		pthread_join(t[i], NULL);
	uint64_t all = 0;
	for (int i = 0; i < NTHR; i++)
		all = all * 31 + sums[i];
	sigset_t none;
	sigemptyset(&none);
	while (!quiet && !term)
		sigsuspend(&none);
	printf("sum %016llx\n", (unsigned long long)all);
	if (!quiet)
		printf("usr1 %s, rt %s\n", usr1 > 0 ? "seen" : "NOT SEEN", rt > 0 ? "seen" : "NOT SEEN");
	return 0;
}
