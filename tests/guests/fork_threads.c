/* fork in a multithreaded program: only the forking thread goes on in the child, with the memory
 * as it was at the fork (a mutex another thread held stays held), and the child can make threads
 * of its own. Forking from a thread other than the main one works the same. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static int hold_pipe[2];
static volatile int before_fork;

static void *holder(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&held);
	char c = 'h';
	if (write(hold_pipe[1], &c, 1) != 1) /* tell main it holds the mutex */
		return NULL;
	for (;;)
		pause();
	return NULL;
}

static void *child_thread(void *arg)
{
	return (void *)((long)arg + 1);
}

/* The child's verdict as its exit status: 0 when all held. */
static int child_checks(void)
{
	if (before_fork != 42)
		return 1;
	if (pthread_mutex_trylock(&held) != EBUSY)
		return 2; /* as glibc leaves it: held by a thread that does not exist here */
	pthread_t t;
	void *ret = NULL;
	if (pthread_create(&t, NULL, child_thread, (void *)41L) != 0 || pthread_join(t, &ret) != 0)
		return 3;
	if ((long)ret != 42)
		return 4;
	return 0;
}

static void *forker(void *arg)
{
	(void)arg;
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_checks());
	int st = 0;
	waitpid(pid, &st, 0);
	return (void *)(long)st;
}

int main(void)
{
	if (pipe(hold_pipe) < 0)
		return 1;
	pthread_t h;
	char c;
	if (pthread_create(&h, NULL, holder, NULL) != 0 || read(hold_pipe[0], &c, 1) != 1)
		return 1;
	before_fork = 42;
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_checks());
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork from main with another thread running (child says %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	pthread_t f;
	void *ret = NULL;
	if (pthread_create(&f, NULL, forker, NULL) != 0 || pthread_join(f, &ret) != 0)
		return 1;
	st = (int)(long)ret;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork from a second thread (child says %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	CHECK(pthread_mutex_trylock(&held) == EBUSY, "the parent's mutex is still its holder's");
	return check_done();
}
