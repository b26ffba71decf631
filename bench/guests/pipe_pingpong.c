/*
 * pipe_pingpong threads|procs [M]: one byte goes back and forth M times (after a warm-up of M/10
 * round trips) over two pipes between the main thread and a partner that reads a byte from one
 * pipe and writes it to the other: a second thread (threads) or a forked child (procs). Timed by
 * the main thread with CLOCK_MONOTONIC around the M round trips; each round trip is two writes and
 * two reads, each read blocking until the other side writes.
 * Prints: "pipe_pingpong mode=<mode> rounds=<M> ns_per_round_trip=<x>". Default M = 20000.
 * A failed read, write, fork or pthread call prints "pipe_pingpong: <what>: <error>" on stderr and
 * exits 1; bad usage 2.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int to_partner[2], from_partner[2];

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "pipe_pingpong: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* One byte from fd, or 0 at end of file. */
static int get_byte(int fd, char *c)
{
	ssize_t r;
	do
		r = read(fd, c, 1);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("read");
	return (int)r;
}

static void put_byte(int fd, char c)
{
	ssize_t r;
	do
		r = write(fd, &c, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		die("write");
}

/* The partner: echoes every byte until the main side closes its end. */
static void *partner(void *arg)
{
	(void)arg;
	char c;
	while (get_byte(to_partner[0], &c) == 1)
		put_byte(from_partner[1], c);
	return NULL;
}

static void round_trips(long n)
{
	char c;
	for (long i = 0; i < n; i++) {
		put_byte(to_partner[1], (char)i);
		if (get_byte(from_partner[0], &c) != 1 || c != (char)i) {
			errno = EPROTO;
			die("echo");
		}
	}
}

int main(int argc, char **argv)
{
	int procs = argc > 1 && strcmp(argv[1], "procs") == 0;
	long m = argc > 2 ? atol(argv[2]) : 20000;
	if (argc < 2 || (!procs && strcmp(argv[1], "threads") != 0) || m < 1) {
		fprintf(stderr, "usage: pipe_pingpong threads|procs [M>0]\n");
		return 2;
	}
	if (pipe(to_partner) < 0 || pipe(from_partner) < 0)
		die("pipe");
	pthread_t t;
	pid_t child = -1;
	if (procs) {
		child = fork();
		if (child < 0)
			die("fork");
		if (child == 0) {
			close(to_partner[1]);
			close(from_partner[0]);
			partner(NULL);
			_exit(0);
		}
		close(to_partner[0]);
		close(from_partner[1]);
	} else {
		int e = pthread_create(&t, NULL, partner, NULL);
		if (e != 0) {
			errno = e;
			die("pthread_create");
		}
	}
	round_trips(m / 10);
	double t0 = now_ns();
	round_trips(m);
	double t1 = now_ns();
	close(to_partner[1]); /* the partner sees end of file and ends */
	if (procs) {
		int st;
		if (waitpid(child, &st, 0) < 0)
			die("waitpid");
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			errno = ECHILD;
			die("the child failed");
		}
	} else {
		pthread_join(t, NULL);
	}
	printf("pipe_pingpong mode=%s rounds=%ld ns_per_round_trip=%.1f\n", argv[1], m, (t1 - t0) / (double)m);
	return 0;
}
