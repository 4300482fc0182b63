/*
 * metrics-wait: waits until ipvs-agent's /metrics say it programmed N virtual services and finished
 * a sync (ipvs_agent_services_programmed == N, ipvs_agent_sync_duration_seconds_count > 0), asking
 * every 50 ms, and prints when it saw them. `make bench` times the agent's first programming with it.
 *
 * Why not bash: guest-bench.sh first asked from bash (/dev/tcp and `read`), which reads a socket one
 * byte per system call; in the emulated VM one answer (about 13 KB) then took about 2 s of a vCPU,
 * so the asking took most of one of the two vCPUs the agent was measured on (see docs/benchmarks.md).
 * Here each answer is read in a few calls and searched in place.
 *
 * Usage: metrics-wait PORT SERVICES PID [TIMEOUT_SECONDS]
 *   PORT      the agent's --metrics-address port on 127.0.0.1
 *   SERVICES  the number of virtual services to wait for
 *   PID       the agent: waiting stops when it has exited
 * Prints "<CLOCK_REALTIME microseconds when seen> <answers read>" and exits 0; exits 1 when the agent
 * exited or after TIMEOUT_SECONDS (default 1200), 2 on bad arguments.
 *
 * Build: cc -O2 -o metrics-wait metrics-wait.c
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_us(clockid_t clock) {
	struct timespec t;
	clock_gettime(clock, &t);
	return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Whether process `pid` runs (exists and is not a zombie), as guest-bench.sh's `running`. */
static int running(const char *pid) {
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	FILE *file = fopen(path, "r");
	if (!file)
		return 0;
	size_t length = fread(stat, 1, sizeof(stat) - 1, file);
	fclose(file);
	stat[length] = 0;
	const char *close = strrchr(stat, ')');
	return close && close[1] == ' ' && close[2] != 'Z';
}

/* The /metrics answer into `buffer` (NUL-terminated); its length, or -1 when it cannot be had. */
static long fetch(unsigned short port, char *buffer, size_t size) {
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	static const char request[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	size_t length = 0;
	if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0 ||
	    write(fd, request, sizeof(request) - 1) != (ssize_t)(sizeof(request) - 1)) {
		close(fd);
		return -1;
	}
	for (ssize_t got; length < size - 1 && (got = read(fd, buffer + length, size - 1 - length)) > 0;)
		length += (size_t)got;
	close(fd);
	buffer[length] = 0;
	return (long)length;
}

/* The value of the sample line `name` (no labels) in the answer, or -1 when absent. */
static double sample(const char *answer, const char *name) {
	size_t length = strlen(name);
	for (const char *line = answer; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (strncmp(line, name, length) == 0 && line[length] == ' ')
			return strtod(line + length + 1, NULL);
	}
	return -1;
}

int main(int argc, char **argv) {
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: metrics-wait PORT SERVICES PID [TIMEOUT_SECONDS]\n");
		return 2;
	}
	long port = strtol(argv[1], NULL, 10), services = strtol(argv[2], NULL, 10);
	long timeout = argc == 5 ? strtol(argv[4], NULL, 10) : 1200;
	if (port <= 0 || port > 65535 || services < 0 || timeout <= 0) {
		fprintf(stderr, "metrics-wait: bad arguments\n");
		return 2;
	}
	static char answer[1 << 20];
	long long deadline = now_us(CLOCK_MONOTONIC) + (long long)timeout * 1000000;
	long answers = 0;
	struct timespec pause = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
	while (now_us(CLOCK_MONOTONIC) < deadline && running(argv[3])) {
		if (fetch((unsigned short)port, answer, sizeof(answer)) > 0) {
			answers++;
			if (sample(answer, "ipvs_agent_services_programmed") == (double)services &&
			    sample(answer, "ipvs_agent_sync_duration_seconds_count") > 0) {
				printf("%lld %ld\n", now_us(CLOCK_REALTIME), answers);
				return 0;
			}
		}
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "metrics-wait: %s after %ld answers\n", running(argv[3]) ? "timed out" : "the agent exited", answers);
	return 1;
}
