/* INT64_MIN / -1 overflows the quotient, the CPU raises #DE: must die with SIGFPE. */
// E2E: run SIGFPE
#include <stdint.h>

#include "crash.h"

volatile int64_t minus_one = -1;
volatile int64_t most_negative = INT64_MIN;

int main(void)
{
	int64_t r;

	say("about to divide INT64_MIN by -1\n");
	r = most_negative / minus_one;
	return survived("INT64_MIN / -1") + (int)r;
}
