/*
 * health-backends: the backends of `make bench`'s health workload. One listening TCP socket per
 * backend address on loopback (127.0.0.0/8 is all local on Linux), every accepted connection closed
 * at once, all on one epoll thread so that 10,000 connections a second cost little. A backend is
 * "killed" by closing its listening socket: connects to it then get a reset (connection refused).
 *
 * Usage: health-backends COUNT PORT [BASE]
 *
 * Backend i (0 <= i < COUNT) listens on A.B.(i / 250).(i % 250 + 1):PORT, the addresses
 * health-bench checks, where A.B.0.0 is BASE (default 127.1.0.0; any other base must be local, e.g.
 * `ip route add local BASE/16 dev lo` in the backends' network namespace). Prints "ready" once every socket listens. Then reads commands on stdin, one
 * a line:
 *   kill I J K ...   closes the listening sockets of backends I, J, K and prints
 *                    "killed NANOSECONDS", the CLOCK_REALTIME instant after the last close
 * and exits when stdin closes. Prints "error: ..." and exits 1 when a socket cannot be set up.
 *
 * Build: cc -O2 -o health-backends health-backends.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_BACKENDS = 62500, EVENTS = 256 };

/* epoll data: the backend index, or STDIN_TAG for the command pipe. */
#define STDIN_TAG UINT64_MAX

static int *listeners;
static uint32_t base = (127u << 24) | (1u << 16);

static void fail(const char *what, long index)
{
	printf("error: %s (backend %ld): %s\n", what, index, strerror(errno));
	fflush(stdout);
	exit(1);
}

static int listen_on(long index, int port)
{
	struct sockaddr_in address = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(base | ((uint32_t)(index / 250) << 8) | (uint32_t)(index % 250 + 1)),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0)
		fail("socket", index);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0)
		fail("bind", index);
	if (listen(fd, 128) != 0)
		fail("listen", index);
	return fd;
}

/* Accepts and closes every pending connection of one listener. */
static void drain(int fd)
{
	for (;;) {
		int connection = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (connection < 0)
			return;
		close(connection);
	}
}

/* Runs one command line. */
static void command(char *line, long count)
{
	struct timespec now;
	char *cursor = line;
	if (strncmp(line, "kill", 4) != 0) {
		printf("error: unknown command '%s'\n", line);
		fflush(stdout);
		return;
	}
	cursor += 4;
	for (;;) {
		char *end;
		long index = strtol(cursor, &end, 10);
		if (end == cursor)
			break;
		cursor = end;
		if (index >= 0 && index < count && listeners[index] >= 0) {
			close(listeners[index]);
			listeners[index] = -1;
		}
	}
	clock_gettime(CLOCK_REALTIME, &now);
	printf("killed %lld\n", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct rlimit limit;
	struct epoll_event events[EVENTS];
	static char input[1 << 20];
	size_t used = 0;
	long count;
	int port, epoll;

	struct in_addr given;
	if (argc < 3 || argc > 4 || (count = strtol(argv[1], NULL, 10)) < 1 || count > MAX_BACKENDS ||
	    (port = atoi(argv[2])) < 1 || port > 65535 || (argc == 4 && inet_pton(AF_INET, argv[3], &given) != 1)) {
		fprintf(stderr, "usage: health-backends COUNT PORT [BASE] (COUNT 1 to %d, BASE an IPv4 address A.B.0.0)\n", MAX_BACKENDS);
		return 2;
	}
	if (argc == 4)
		base = ntohl(given.s_addr) & 0xffff0000u;
	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < (rlim_t)count + 64) {
		limit.rlim_cur = limit.rlim_max;
		setrlimit(RLIMIT_NOFILE, &limit);
	}
	listeners = calloc((size_t)count, sizeof *listeners);
	epoll = epoll_create1(EPOLL_CLOEXEC);
	if (!listeners || epoll < 0)
		fail("epoll_create1", -1);
	for (long i = 0; i < count; i++) {
		struct epoll_event event = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
		listeners[i] = listen_on(i, port);
		if (epoll_ctl(epoll, EPOLL_CTL_ADD, listeners[i], &event) != 0)
			fail("epoll_ctl", i);
	}
	struct epoll_event in = { .events = EPOLLIN, .data.u64 = STDIN_TAG };
	if (epoll_ctl(epoll, EPOLL_CTL_ADD, STDIN_FILENO, &in) != 0)
		fail("epoll_ctl stdin", -1);
	printf("ready\n");
	fflush(stdout);

	for (;;) {
		int ready = epoll_wait(epoll, events, EVENTS, -1);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0)
			fail("epoll_wait", -1);
		for (int e = 0; e < ready; e++) {
			uint64_t tag = events[e].data.u64;
			if (tag != STDIN_TAG) {
				if (listeners[tag] >= 0)
					drain(listeners[tag]);
				continue;
			}
			ssize_t n = read(STDIN_FILENO, input + used, sizeof input - used - 1);
			if (n <= 0)
				return 0;
			used += (size_t)n;
			input[used] = 0;
			char *line = input, *newline;
			while ((newline = strchr(line, '\n'))) {
				*newline = 0;
				command(line, count);
				line = newline + 1;
			}
			used = strlen(line);
			memmove(input, line, used);
		}
	}
}
