/*
 * Shared bits of the crash_* guests: each prints what it is about to do, then does something
 * that must kill it with a signal. If it is still alive afterwards it says so and exits 1.
 * Output goes straight to fd 1 with write(2), so nothing is lost in a stdio buffer.
 */
#ifndef KM_TEST_CRASH_H
#define KM_TEST_CRASH_H

#include <string.h>
#include <unistd.h>

__attribute__((unused)) static void say(const char *s)
{
	if (write(1, s, strlen(s)) < 0)
		_exit(2);
}

__attribute__((unused)) static int survived(const char *what)
{
	say("FAIL still alive after ");
	say(what);
	say("\n");
	return 1;
}

#endif
