/* Socket addresses in words, for --inspect and messages (km_inet.h). */
#include <arpa/inet.h>
#include <stdio.h>

#include "km_inet.h"

const char *km_inet_addr_str(const struct sockaddr_storage *a, uint32_t len, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	if (len == sizeof(struct sockaddr_in) && a->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)a;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(s->sin_port));
	} else if (len == sizeof(struct sockaddr_in6) && a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)a;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else {
		snprintf(buf, size, "%s", len == 0 ? "unbound" : "(bad address)");
	}
	return buf;
}
