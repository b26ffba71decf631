/*
 * Thread-local storage and the thread life cycle as libc shows it (issue 7): __thread variables
 * per thread, pthread_join and pthread_detach, pthread_cancel of a thread blocked at a
 * cancellation point (pthread_cond_wait, sleep), pthread_exit values, pthread_key destructors,
 * and C11 threads (thrd_*, mtx_*, cnd_*, tss_*, call_once).
 */
// E2E: run 0
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <threads.h>

#include "check.h"

#define NT 6

static __thread int tls_int = 7;
static __thread char tls_buf[64] = "initial";
static __thread unsigned long long tls_big[512]; /* .tbss: zero in every new thread */

/* --- __thread ------------------------------------------------------------------------------ */

static pthread_barrier_t tls_barrier;

static void *tls_worker(void *arg)
{
	int id = (int)(uintptr_t)arg, ok = 1;

	if (tls_int != 7 || strcmp(tls_buf, "initial") != 0)
		ok = 0;
	for (int i = 0; i < 512; i++)
		if (tls_big[i] != 0)
			ok = 0;
	tls_int = 100 + id;
	snprintf(tls_buf, sizeof(tls_buf), "thread %d", id);
	for (int i = 0; i < 512; i++)
		tls_big[i] = (unsigned long long)id * 1000 + (unsigned long long)i;
	/* Everyone has written its own copy before anyone reads back. */
	pthread_barrier_wait(&tls_barrier);
	char want[64];
	snprintf(want, sizeof(want), "thread %d", id);
	if (tls_int != 100 + id || strcmp(tls_buf, want) != 0)
		ok = 0;
	for (int i = 0; i < 512; i++)
		if (tls_big[i] != (unsigned long long)id * 1000 + (unsigned long long)i)
			ok = 0;
	return (void *)(uintptr_t)ok;
}

static void test_tls(void)
{
	pthread_t t[NT];
	int all = 1;

	tls_int = 1;
	strcpy(tls_buf, "main");
	pthread_barrier_init(&tls_barrier, NULL, NT);
	for (int i = 0; i < NT; i++)
		CHECK(pthread_create(&t[i], NULL, tls_worker, (void *)(uintptr_t)i) == 0, "tls: create thread %d", i);
	for (int i = 0; i < NT; i++) {
		void *r = NULL;
		pthread_join(t[i], &r);
		all &= r == (void *)1;
	}
	CHECK(all, "tls: each thread started with the initial values and kept its own copies");
	CHECK(tls_int == 1 && strcmp(tls_buf, "main") == 0, "tls: the main thread's copies are untouched");
	pthread_barrier_destroy(&tls_barrier);
}

/* --- join, detach, pthread_exit ------------------------------------------------------------ */

static sem_t detached_done;
static int detached_ran;

static void *detached_worker(void *arg)
{
	(void)arg;
	detached_ran = 1;
	sem_post(&detached_done);
	return NULL;
}

__attribute__((noinline)) static void exit_inner(void)
{
	pthread_exit((void *)(uintptr_t)0x4242);
}

__attribute__((noinline)) static void exit_outer(void)
{
	exit_inner();
}

static void *exiting_worker(void *arg)
{
	(void)arg;
	exit_outer();
	return (void *)1; /* not reached */
}

static void *returning_worker(void *arg)
{
	return (void *)((uintptr_t)arg * 3);
}

static void test_join_detach_exit(void)
{
	pthread_t t;
	pthread_attr_t attr;
	void *r = NULL;

	CHECK(pthread_create(&t, NULL, returning_worker, (void *)14) == 0, "join: create");
	CHECK(pthread_join(t, &r) == 0 && r == (void *)42, "join: the thread's return value arrives");

	CHECK(pthread_create(&t, NULL, exiting_worker, NULL) == 0, "pthread_exit: create");
	CHECK(pthread_join(t, &r) == 0 && r == (void *)0x4242, "pthread_exit: its value arrives through join");

	sem_init(&detached_done, 0, 0);
	CHECK(pthread_create(&t, NULL, detached_worker, NULL) == 0, "detach: create");
	CHECK(pthread_detach(t) == 0, "detach: pthread_detach");
	sem_wait(&detached_done);
	CHECK(detached_ran, "detach: the detached thread ran");

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	CHECK(pthread_create(&t, &attr, detached_worker, NULL) == 0, "detach: created detached");
	sem_wait(&detached_done);
	pthread_attr_destroy(&attr);

	/* Many short-lived threads in a row: their stacks and ids are reused. */
	int all = 1;
	for (int i = 0; i < 200; i++) {
		if (pthread_create(&t, NULL, returning_worker, (void *)(uintptr_t)i) != 0 ||
		    pthread_join(t, &r) != 0 || r != (void *)(uintptr_t)(i * 3))
			all = 0;
	}
	CHECK(all, "join: 200 threads created and joined one after another");
}

/* --- cancellation -------------------------------------------------------------------------- */

static pthread_mutex_t cmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ccv = PTHREAD_COND_INITIALIZER;
static int cancel_waiting, cleanup_ran, cleanup_held_lock;

static void cancel_cleanup(void *arg)
{
	(void)arg;
	/* A thread cancelled in pthread_cond_wait has reacquired the mutex. */
	cleanup_held_lock = pthread_mutex_trylock(&cmu) == EBUSY;
	cleanup_ran++;
	pthread_mutex_unlock(&cmu);
}

static void *cond_waiter(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cmu);
	pthread_cleanup_push(cancel_cleanup, NULL);
	cancel_waiting = 1;
	pthread_cond_broadcast(&ccv);
	for (;;)
		pthread_cond_wait(&ccv, &cmu); /* nobody signals the predicate: only cancel ends this */
	pthread_cleanup_pop(1);
	return NULL;
}

static void sleep_cleanup(void *arg)
{
	*(int *)arg = 1;
}

static void *sleeper(void *arg)
{
	pthread_cleanup_push(sleep_cleanup, arg);
	sem_post(&detached_done);
	for (;;)
		sleep(100);
	pthread_cleanup_pop(0);
	return NULL;
}

static sem_t spinner_go;

static void *spinner(void *arg)
{
	(void)arg;
	pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	sem_post(&detached_done);
	sem_wait(&spinner_go); /* main cancels meanwhile: disabled, so nothing happens here */
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
	pthread_testcancel();
	return (void *)7;
}

static void test_cancel(void)
{
	pthread_t t;
	void *r = NULL;
	int sleep_cleaned = 0;

	CHECK(pthread_create(&t, NULL, cond_waiter, NULL) == 0, "cancel: create a condvar waiter");
	pthread_mutex_lock(&cmu);
	while (!cancel_waiting)
		pthread_cond_wait(&ccv, &cmu);
	pthread_mutex_unlock(&cmu); /* the waiter can only be in pthread_cond_wait from here on */
	CHECK(pthread_cancel(t) == 0, "cancel: pthread_cancel of the condvar waiter");
	CHECK(pthread_join(t, &r) == 0 && r == PTHREAD_CANCELED, "cancel: join gives PTHREAD_CANCELED");
	CHECK(cleanup_ran == 1, "cancel: the cleanup handler ran once");
	CHECK(cleanup_held_lock, "cancel: the waiter held the mutex again in its cleanup handler");
	CHECK(pthread_mutex_trylock(&cmu) == 0, "cancel: the mutex is free after the cleanup");
	pthread_mutex_unlock(&cmu);

	sem_init(&detached_done, 0, 0);
	CHECK(pthread_create(&t, NULL, sleeper, &sleep_cleaned) == 0, "cancel: create a sleeper");
	sem_wait(&detached_done);
	CHECK(pthread_cancel(t) == 0, "cancel: pthread_cancel of the sleeper");
	CHECK(pthread_join(t, &r) == 0 && r == PTHREAD_CANCELED, "cancel: the sleeper ends cancelled");
	CHECK(sleep_cleaned, "cancel: the sleeper's cleanup handler ran");

	/* Cancellation disabled: the request waits until the thread enables it and tests. */
	sem_init(&detached_done, 0, 0);
	sem_init(&spinner_go, 0, 0);
	CHECK(pthread_create(&t, NULL, spinner, NULL) == 0, "cancel: create a thread with cancellation disabled");
	sem_wait(&detached_done);
	CHECK(pthread_cancel(t) == 0, "cancel: pthread_cancel while disabled");
	sem_post(&spinner_go);
	CHECK(pthread_join(t, &r) == 0 && r == PTHREAD_CANCELED, "cancel: acted on at pthread_testcancel");
}

/* --- pthread_key destructors --------------------------------------------------------------- */

static pthread_key_t key;
static int destructor_calls;
static uintptr_t destructor_sum;
static pthread_mutex_t kmu = PTHREAD_MUTEX_INITIALIZER;

static void key_destructor(void *v)
{
	pthread_mutex_lock(&kmu);
	destructor_calls++;
	destructor_sum += (uintptr_t)v;
	pthread_mutex_unlock(&kmu);
}

static void *key_worker(void *arg)
{
	uintptr_t id = (uintptr_t)arg;

	if (pthread_getspecific(key) != NULL)
		return (void *)1;
	pthread_setspecific(key, (void *)(id + 1));
	if (pthread_getspecific(key) != (void *)(id + 1))
		return (void *)1;
	if (id == 0)
		pthread_exit(NULL); /* destructors run on pthread_exit too */
	if (id == 1)
		pthread_setspecific(key, NULL); /* a NULL value: no destructor call */
	return NULL;
}

static void test_keys(void)
{
	pthread_t t[NT];
	int all = 1;

	CHECK(pthread_key_create(&key, key_destructor) == 0, "keys: pthread_key_create");
	pthread_setspecific(key, (void *)1000);
	for (int i = 0; i < NT; i++)
		pthread_create(&t[i], NULL, key_worker, (void *)(uintptr_t)i);
	for (int i = 0; i < NT; i++) {
		void *r = NULL;
		pthread_join(t[i], &r);
		all &= r == NULL;
	}
	CHECK(all, "keys: each thread starts with NULL and reads back its own value");
	CHECK_EQ(destructor_calls, NT - 1, "keys: a destructor call per thread with a non-NULL value");
	/* values 1..NT, minus thread 1's (2) */
	CHECK_EQ(destructor_sum, (uintptr_t)NT * (NT + 1) / 2 - 2, "keys: each with that thread's value");
	CHECK(pthread_getspecific(key) == (void *)1000, "keys: the main thread's value is its own");
	pthread_key_delete(key);
}

/* --- C11 threads ---------------------------------------------------------------------------- */

static mtx_t c11_mtx;
static cnd_t c11_cnd;
static tss_t c11_tss;
static int c11_counter, c11_ready, c11_go, c11_tss_dtor;
static once_flag c11_once = ONCE_FLAG_INIT;
static int c11_once_calls;

static void c11_once_fn(void)
{
	c11_once_calls++;
}

static void c11_tss_dtor_fn(void *v)
{
	mtx_lock(&c11_mtx);
	c11_tss_dtor += (int)(intptr_t)v;
	mtx_unlock(&c11_mtx);
}

static int c11_worker(void *arg)
{
	int id = (int)(intptr_t)arg;

	call_once(&c11_once, c11_once_fn);
	tss_set(c11_tss, (void *)(intptr_t)(id + 1));
	mtx_lock(&c11_mtx);
	c11_ready++;
	cnd_broadcast(&c11_cnd);
	while (!c11_go)
		cnd_wait(&c11_cnd, &c11_mtx);
	mtx_unlock(&c11_mtx);
	for (int i = 0; i < 1000; i++) {
		mtx_lock(&c11_mtx);
		c11_counter++;
		mtx_unlock(&c11_mtx);
	}
	if (tss_get(c11_tss) != (void *)(intptr_t)(id + 1))
		return -1;
	return id * 2;
}

static void test_c11(void)
{
	thrd_t t[4];
	int sum = 0, all = 1;

	CHECK(mtx_init(&c11_mtx, mtx_plain) == thrd_success, "c11: mtx_init");
	CHECK(cnd_init(&c11_cnd) == thrd_success, "c11: cnd_init");
	CHECK(tss_create(&c11_tss, c11_tss_dtor_fn) == thrd_success, "c11: tss_create");
	for (int i = 0; i < 4; i++)
		all &= thrd_create(&t[i], c11_worker, (void *)(intptr_t)i) == thrd_success;
	CHECK(all, "c11: thrd_create of 4 threads");
	mtx_lock(&c11_mtx);
	while (c11_ready < 4)
		cnd_wait(&c11_cnd, &c11_mtx);
	c11_go = 1;
	cnd_broadcast(&c11_cnd);
	mtx_unlock(&c11_mtx);
	for (int i = 0; i < 4; i++) {
		int res = -100;
		all &= thrd_join(t[i], &res) == thrd_success;
		sum += res;
	}
	CHECK(all, "c11: thrd_join of 4 threads");
	CHECK_EQ(sum, 0 + 2 + 4 + 6, "c11: thrd_join gives each thread's result");
	CHECK_EQ(c11_counter, 4000, "c11: mtx-protected counter exact");
	CHECK_EQ(c11_once_calls, 1, "c11: call_once ran its function once");
	CHECK_EQ(c11_tss_dtor, 1 + 2 + 3 + 4, "c11: tss destructors ran with each thread's value");
	struct timespec ts = {0, 1000000};
	CHECK(thrd_sleep(&ts, NULL) == 0, "c11: thrd_sleep");
	tss_delete(c11_tss);
	cnd_destroy(&c11_cnd);
	mtx_destroy(&c11_mtx);
}

int main(void)
{
	test_tls();
	test_join_detach_exit();
	test_cancel();
	test_keys();
	test_c11();
	return check_done();
}
