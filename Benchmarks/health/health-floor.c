/*
 * health-floor: the floor of the health workload. The least a TCP health checker has to do: one
 * non-blocking connect per backend per interval, spread evenly over the interval, completions from
 * one epoll set, collected every 2 ms while connects are in flight (one wake-up for many), each
 * socket then disconnected with a reset (connect to AF_UNSPEC) and kept, still in the epoll set, for
 * the next connect; SO_ERROR read only for a connect that polls as failed. The same economies as the
 * HealthCheck library's poller, so that checker / floor stays the library's overhead. No state machine, no timeouts, no allocation. Its CPU is mostly
 * the kernel's TCP work for each check; on loopback that includes the backends' side of every
 * handshake (processed in the checker's softirq context), which on a real node happens on the
 * backends' hosts.
 *
 * Usage: health-floor COUNT PORT WARMUP_SECONDS WINDOW_SECONDS [BASE]
 *
 * Checks the backends of health-backends.c (A.B.(i / 250).(i % 250 + 1):PORT, A.B.0.0 being BASE,
 * default 127.1.0.0) every second;
 * prints "cpu PERCENT checks-per-second RATE failures N" for the window (CPU of this process, user
 * + system, as a percentage of one core).
 *
 * Build: cc -O2 -o health-floor health-floor.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/* Idle sockets: disconnected, in the epoll set, disarmed (their one-shot event fired or was never armed). */
static int idle[4096];
static int idle_count;
/* Whether each descriptor is in the epoll set (a closed one leaves it). */
static char in_epoll[1 << 20];

/* Resets the connection and keeps the socket; closes it when full. The reset leaves ECONNRESET on the
 * socket, which the next connect clears (tcp_connect_init) before the socket is armed again. */
static void finish(int fd)
{
	struct sockaddr unspecified = { .sa_family = AF_UNSPEC };
	if (idle_count < (int)(sizeof idle / sizeof idle[0]) && connect(fd, &unspecified, sizeof unspecified) == 0) {
		idle[idle_count++] = fd;
		return;
	}
	struct linger option = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
	close(fd);
	in_epoll[fd] = 0;
}

int main(int argc, char **argv)
{
	struct in_addr given = { .s_addr = htonl((127u << 24) | (1u << 16)) };
	if ((argc != 5 && argc != 6) || (argc == 6 && inet_pton(AF_INET, argv[5], &given) != 1)) {
		fprintf(stderr, "usage: health-floor COUNT PORT WARMUP_SECONDS WINDOW_SECONDS [BASE]\n");
		return 2;
	}
	uint32_t base = ntohl(given.s_addr) & 0xffff0000u;
	long count = strtol(argv[1], NULL, 10);
	int port = atoi(argv[2]);
	double warmup = atof(argv[3]), window = atof(argv[4]);
	int epoll = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event events[256];
	double start = now(), measured_from = 0, cpu_from = 0;
	long next = 0, checks = 0, failures = 0, checks_from = 0, in_flight = 0;

	for (;;) {
		double t = now() - start;
		if (measured_from == 0 && t >= warmup) {
			measured_from = now();
			cpu_from = cpu();
			checks_from = checks;
		}
		if (t >= warmup + window)
			break;
		/* Start every check due by now: backend i at i / count of each second. */
		long due = (long)(t * (double)count);
		for (; next < due; next++) {
			long i = next % count;
			struct sockaddr_in address = {
				.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(base | ((uint32_t)(i / 250) << 8) | (uint32_t)(i % 250 + 1)),
			};
			int fd = idle_count > 0 ? idle[--idle_count] : socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0 || fd >= (int)sizeof in_epoll)
				continue;
			int connected = connect(fd, (struct sockaddr *)&address, sizeof address);
			if (connected == 0 || errno != EINPROGRESS) {
				checks++;
				failures += connected != 0;
				finish(fd);
				continue;
			}
			struct epoll_event event = { .events = EPOLLOUT | EPOLLONESHOT, .data.fd = fd };
			epoll_ctl(epoll, in_epoll[fd] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event);
			in_epoll[fd] = 1;
			in_flight++;
		}
		if (in_flight > 0) {
			struct timespec pause = { .tv_sec = 0, .tv_nsec = 2000000 };
			nanosleep(&pause, NULL);
		}
		int ready = epoll_wait(epoll, events, 256, 1);
		in_flight -= ready > 0 ? ready : 0;
		for (int e = 0; e < ready; e++) {
			/* A failed connect polls as an error; only then is SO_ERROR worth a system call. */
			int error = 0;
			socklen_t length = sizeof error;
			if (events[e].events & (EPOLLERR | EPOLLHUP))
				getsockopt(events[e].data.fd, SOL_SOCKET, SO_ERROR, &error, &length);
			checks++;
			failures += error != 0;
			finish(events[e].data.fd);
		}
	}
	double elapsed = now() - measured_from;
	printf("cpu %.2f checks-per-second %.0f failures %ld\n", (cpu() - cpu_from) / elapsed * 100,
	       (double)(checks - checks_from) / elapsed, failures);
	return 0;
}
