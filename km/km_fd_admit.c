/* The door into the guest's fd table: see km_fd_admit.h. */
#include "km_fd_admit.h"

long km_fd_admit(km_guest_t *g, long fd)
{
	(void)g;
	return fd;
}
