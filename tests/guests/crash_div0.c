/* Integer division by zero: must die with SIGFPE. */
// E2E: run SIGFPE
#include "crash.h"

volatile int zero = 0;
volatile int numerator = 1;

int main(void)
{
	int r;

	say("about to divide by zero\n");
	r = numerator / zero;
	return survived("integer division by zero") + r;
}
