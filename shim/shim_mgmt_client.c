/* Client of km's management socket: see shim_mgmt_client.h. */
#include "shim_mgmt_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX 65536

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_sock(int dirfd, km_err_t **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/km.sock", dirfd);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return km_err_set(err, errno, "management socket");
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(s);
		return km_err_set(err, e, "connecting to km's management socket");
	}
	return s;
}

static int send_request(int s, const char *request, int pass_fd, km_err_t **err)
{
	size_t len = strlen(request);
	char *line = malloc(len + 1);
	if (line == NULL)
		return km_err_set(err, ENOMEM, "management request");
	memcpy(line, request, len);
	line[len] = '\n';
	struct iovec iov = {.iov_base = line, .iov_len = len + 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (pass_fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	ssize_t w;
	do
		w = sendmsg(s, &msg, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	int e = errno;
	free(line);
	if (w < 0)
		return km_err_set(err, e, "sending to km's management socket");
	if ((size_t)w != len + 1) /* the rest without the descriptor (sent with the first bytes) */
		return km_err_set(err, 0, "sending to km's management socket: short write");
	return 0;
}

static int read_reply(int s, int timeout_ms, char **out, km_err_t **err)
{
	char *buf = malloc(REPLY_MAX);
	size_t n = 0;
	long long deadline = now_ms() + timeout_ms;
	if (buf == NULL)
		return km_err_set(err, ENOMEM, "management reply");
	for (;;) {
		char *lf = memchr(buf, '\n', n);
		if (lf != NULL) {
			*lf = '\0';
			*out = buf;
			return 0;
		}
		if (n == REPLY_MAX) {
			free(buf);
			return km_err_set(err, 0, "km's management reply is too long");
		}
		long long left = deadline - now_ms();
		if (left <= 0) {
			free(buf);
			return km_err_set(err, ETIMEDOUT, "waiting for km's management reply");
		}
		struct pollfd p = {.fd = s, .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			return km_err_set(err, e, "waiting for km's management reply");
		}
		if (r == 0)
			continue;
		ssize_t got = read(s, buf + n, REPLY_MAX - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			int e = got < 0 ? errno : 0;
			free(buf);
			return km_err_set(err, e, "km closed its management connection without a reply%s",
					  e != 0 ? "" : " (km has exited?)");
		}
		n += (size_t)got;
	}
}

int shim_mgmt_request(int dirfd, const char *request, int pass_fd, int timeout_ms, shim_mgmt_reply_t *reply,
		      km_err_t **err)
{
	reply->line = reply->code = NULL;
	int s = connect_sock(dirfd, err);
	if (s < 0)
		return -1;
	char *line = NULL;
	if (send_request(s, request, pass_fd, err) != 0 || read_reply(s, timeout_ms, &line, err) != 0) {
		close(s);
		return -1;
	}
	close(s);
	reply->line = line;
	if (strncmp(line, "ok", 2) == 0 && (line[2] == '\0' || line[2] == ' '))
		return 0;
	if (strncmp(line, "error ", 6) == 0) {
		size_t cl = strcspn(line + 6, " ");
		reply->code = strndup(line + 6, cl);
		if (reply->code != NULL)
			return 0;
	}
	shim_mgmt_reply_free(reply);
	return km_err_set(err, 0, "km's management reply is malformed");
}

int shim_mgmt_call(int dirfd, const char *request, int pass_fd, int timeout_ms, shim_mgmt_reply_t *reply,
		   km_err_t **err)
{
	if (shim_mgmt_request(dirfd, request, pass_fd, timeout_ms, reply, err) != 0)
		return -1;
	if (reply->code == NULL)
		return 0;
	const char *msg = reply->line + 6 + strlen(reply->code);
	if (*msg == ' ')
		msg++;
	km_err_set(err, 0, "km: %s (%s)", msg, reply->code);
	shim_mgmt_reply_free(reply);
	return -1;
}

void shim_mgmt_reply_free(shim_mgmt_reply_t *reply)
{
	free(reply->line);
	free(reply->code);
	reply->line = reply->code = NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *shim_mgmt_field(const shim_mgmt_reply_t *reply, const char *key)
{
	if (reply->line == NULL || reply->code != NULL)
		return NULL;
	size_t kl = strlen(key);
	const char *p = reply->line;
	while ((p = strchr(p, ' ')) != NULL) {
		p++;
		if (strncmp(p, key, kl) != 0 || p[kl] != '=')
			continue;
		const char *v = p + kl + 1;
		size_t vl = strcspn(v, " ");
		char *out = malloc(vl + 1), *o = out;
		if (out == NULL)
			return NULL;
		for (size_t i = 0; i < vl; i++) {
			int h, l;
			if (v[i] == '%' && i + 2 < vl && (h = hexval(v[i + 1])) >= 0 && (l = hexval(v[i + 2])) >= 0) {
				if (h == 0 && l == 0) { /* a C string cannot hold it: as km, refused */
					free(out);
					return NULL;
				}
				*o++ = (char)(h * 16 + l);
				i += 2;
			} else {
				*o++ = v[i];
			}
		}
		*o = '\0';
		return out;
	}
	return NULL;
}

char *shim_mgmt_encode(const char *s)
{
	char *out = malloc(strlen(s) * 3 + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c > 0x20 && c < 0x7f && c != '%')
			*o++ = (char)c;
		else
			o += sprintf(o, "%%%02X", c);
	}
	*o = '\0';
	return out;
}
