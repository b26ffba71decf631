/*
 * Blocking calls interrupted by a signal (issue 7): a read() on a pipe returns EINTR when the
 * handler lacks SA_RESTART and is restarted (completing when a writer thread writes) with it;
 * nanosleep and clock_nanosleep return EINTR with the time left, SA_RESTART or not, and so does
 * poll. SIGALRM comes from a periodic 50 ms ITIMER_REAL, so that a tick lands while the call
 * blocks however slow the machine; the output does not depend on how many ticks there were.
 */
// E2E: run 0
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>

#include "check.h"

static volatile int ticks;
static int pipe_fds[2];

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

static void handler(int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
}

static void ticking(int on)
{
	struct itimerval it = {{0, on ? 50000 : 0}, {0, on ? 50000 : 0}};

	setitimer(ITIMER_REAL, &it, NULL);
}

/* Writes one byte once the handler has run twice (so the reader was most likely interrupted). */
static void *late_writer(void *arg)
{
	(void)arg;
	while (ticks < 2)
		usleep(5000);
	(void)!write(pipe_fds[1], "z", 1);
	return NULL;
}

static void test_read(void)
{
	char c = 0;
	pthread_t t;
	sigset_t alrm;

	/* The writer thread must not take the SIGALRMs itself: only the reader can be interrupted. */
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);

	(void)!pipe(pipe_fds);
	handler(0);
	ticks = 0;
	ticking(1);
	CHECK_ERR(read(pipe_fds[0], &c, 1), EINTR, "read on an empty pipe, handler without SA_RESTART: EINTR");
	ticking(0);
	CHECK(ticks >= 1, "the SIGALRM handler ran");

	handler(SA_RESTART);
	ticks = 0;
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	pthread_create(&t, NULL, late_writer, NULL);
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	ticking(1);
	CHECK_EQ(read(pipe_fds[0], &c, 1), 1, "with SA_RESTART the read is restarted and gets the byte written later");
	ticking(0);
	CHECK(c == 'z' && ticks >= 2, "the byte arrived after the handler had run");
	pthread_join(t, NULL);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

static void test_sleeps(void)
{
	struct timespec req = {2, 0}, rem = {-1, -1}, abs;
	struct pollfd pfd;
	int p[2];

	for (int restart = 0; restart < 2; restart++) {
		const char *how = restart ? "with SA_RESTART" : "without SA_RESTART";
		handler(restart ? SA_RESTART : 0);
		ticks = 0;
		ticking(1);
		CHECK_ERR(nanosleep(&req, &rem), EINTR, "nanosleep(2 s) interrupted, %s: EINTR", how);
		ticking(0);
		CHECK(rem.tv_sec >= 0 && rem.tv_sec <= 1 && rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000 &&
			      (rem.tv_sec > 0 || rem.tv_nsec > 0),
		      "nanosleep %s: the time left is more than 0 and less than 2 s", how);

		ticks = 0;
		clock_gettime(CLOCK_MONOTONIC, &abs);
		abs.tv_sec += 2;
		ticking(1);
		CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL), EINTR,
			 "clock_nanosleep until an absolute time, %s: EINTR", how);
		ticking(0);

		(void)!pipe(p);
		pfd.fd = p[0];
		pfd.events = POLLIN;
		ticking(1);
		CHECK_ERR(poll(&pfd, 1, 2000), EINTR, "poll interrupted, %s: EINTR (poll never restarts)", how);
		ticking(0);
		close(p[0]);
		close(p[1]);
	}
}

int main(void)
{
	test_read();
	test_sleeps();
	return check_done();
}
