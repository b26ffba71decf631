/* hello: the smallest useful program; its wall time under km vs native is the start-up cost. */
#include <stdio.h>

int main(void)
{
	puts("hello, world");
	return 0;
}
