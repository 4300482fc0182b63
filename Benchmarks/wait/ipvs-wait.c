/*
 * ipvs-wait: waits until a real server of an IPVS service reaches a state, polling the kernel over
 * one netlink socket every millisecond, and prints when it happened. `make bench` uses it to time
 * "file changed -> kernel updated" for ipvs-agent without starting a process per poll (process
 * start-up in the emulated VM costs far more than the change being measured).
 *
 * Usage: ipvs-wait SERVICE REAL STATE READY_FILE [TIMEOUT_SECONDS]
 *   SERVICE, REAL  IPv4 address:port of a TCP service and of one of its real servers
 *   STATE          "weight=N" (present with weight N) or "not-weight=N" (absent, or another weight)
 *   READY_FILE     created once the first poll has run; the caller makes its change after that
 * Prints "<CLOCK_REALTIME microseconds when the state was seen> <polls>" and exits 0;
 * exits 1 on timeout (default 120 s) or a netlink error, 2 on bad arguments, 3 when the state
 * holds already at the first poll (the change was made too early to be timed).
 *
 *        ipvs-wait --list FILE STATE READY_FILE [TIMEOUT_SECONDS]
 *   The same for many real servers at once: FILE has one line "NAME SERVICE REAL" each (NAME any word,
 *   e.g. the backend's index). Each poll reads the real servers of every service still waited for.
 *   Prints "NAME <microseconds when seen> <polls so far>" as each reaches STATE, then, once all have,
 *   "polls <polls> <first poll's microseconds> <last poll's microseconds>" and exits 0. One in STATE
 *   already at the first poll is printed "NAME already" and not timed; exits 3 when all are, 1 on
 *   timeout (naming those still waited for).
 *
 * Build: cc -O2 -o ipvs-wait ipvs-wait.c $(pkg-config --cflags --libs libnl-genl-3.0)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ip_vs.h>
#include <netinet/in.h>
#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int parse_endpoint(const char *text, struct in_addr *address, uint16_t *port) {
	char host[64];
	const char *colon = strrchr(text, ':');
	if (!colon || (size_t)(colon - text) >= sizeof(host))
		return -1;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = 0;
	char *end;
	long value = strtol(colon + 1, &end, 10);
	if (*end || value < 0 || value > 65535 || inet_pton(AF_INET, host, address) != 1)
		return -1;
	*port = htons((uint16_t)value);
	return 0;
}

static long long now_us(void) {
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* The weight of the real server in the service, -1 when absent, -2 on a netlink error. */
static int weight_of(struct nl_sock *sock, int family, struct in_addr vaddr, uint16_t vport, struct in_addr raddr,
		     uint16_t rport) {
	static uint32_t sequence = 1;
	struct nl_msg *msg = nlmsg_alloc();
	genlmsg_put(msg, NL_AUTO_PORT, sequence, family, 0, NLM_F_REQUEST | NLM_F_DUMP, IPVS_CMD_GET_DEST,
		    IPVS_GENL_VERSION);
	struct nlattr *service = nla_nest_start(msg, IPVS_CMD_ATTR_SERVICE);
	nla_put_u16(msg, IPVS_SVC_ATTR_AF, AF_INET);
	nla_put_u16(msg, IPVS_SVC_ATTR_PROTOCOL, IPPROTO_TCP);
	nla_put(msg, IPVS_SVC_ATTR_ADDR, sizeof(vaddr), &vaddr);
	nla_put_u16(msg, IPVS_SVC_ATTR_PORT, vport);
	nla_nest_end(msg, service);
	struct nlmsghdr *header = nlmsg_hdr(msg);
	int sent = nl_sendto(sock, header, header->nlmsg_len);
	nlmsg_free(msg);
	if (sent < 0)
		return -2;
	uint32_t expected = sequence++;

	static unsigned char buffer[1 << 16];
	int weight = -1;
	for (;;) {
		ssize_t got = recv(nl_socket_get_fd(sock), buffer, sizeof(buffer), 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -2;
		}
		int left = (int)got;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buffer; nlmsg_ok(h, left); h = nlmsg_next(h, &left)) {
			if (h->nlmsg_seq != expected)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return weight;
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = nlmsg_data(h);
				return e->error == -ESRCH ? -1 : -2; /* no such service: no such real server */
			}
			struct nlattr *top[IPVS_CMD_ATTR_MAX + 1], *dest[IPVS_DEST_ATTR_MAX + 1];
			if (genlmsg_parse(h, 0, top, IPVS_CMD_ATTR_MAX, NULL) || !top[IPVS_CMD_ATTR_DEST] ||
			    nla_parse_nested(dest, IPVS_DEST_ATTR_MAX, top[IPVS_CMD_ATTR_DEST], NULL))
				continue;
			if (!dest[IPVS_DEST_ATTR_ADDR] || !dest[IPVS_DEST_ATTR_PORT] || !dest[IPVS_DEST_ATTR_WEIGHT])
				continue;
			if (memcmp(nla_data(dest[IPVS_DEST_ATTR_ADDR]), &raddr, sizeof(raddr)) == 0 &&
			    nla_get_u16(dest[IPVS_DEST_ATTR_PORT]) == rport)
				weight = (int)nla_get_u32(dest[IPVS_DEST_ATTR_WEIGHT]);
		}
	}
}

enum { MAX_LIST = 65536 };

/* A generic netlink socket and the IPVS family's number, or NULL after saying why. */
static struct nl_sock *open_ipvs(int *family) {
	struct nl_sock *sock = nl_socket_alloc();
	if (!sock || genl_connect(sock)) {
		fprintf(stderr, "ipvs-wait: cannot open a generic netlink socket\n");
		return NULL;
	}
	*family = genl_ctrl_resolve(sock, IPVS_GENL_NAME);
	if (*family < 0) {
		fprintf(stderr, "ipvs-wait: the kernel has no IPVS generic netlink family\n");
		return NULL;
	}
	return sock;
}

static int wait_list(int argc, char **argv) {
	static struct {
		char name[64];
		struct in_addr vaddr, raddr;
		uint16_t vport, rport;
		int done;
	} targets[MAX_LIST];
	int count = 0, target, negate;
	char name[64], service[64], real[64];
	FILE *list = argc >= 5 && argc <= 6 ? fopen(argv[2], "r") : NULL;
	if (argc < 5 || argc > 6 ||
	    (sscanf(argv[3], "weight=%d", &target) != 1 && sscanf(argv[3], "not-weight=%d", &target) != 1)) {
		fprintf(stderr, "usage: ipvs-wait --list FILE weight=N|not-weight=N READY_FILE [TIMEOUT_SECONDS]\n");
		return 2;
	}
	if (!list) {
		perror(argv[2]);
		return 2;
	}
	while (count < MAX_LIST && fscanf(list, "%63s %63s %63s", name, service, real) == 3) {
		if (parse_endpoint(service, &targets[count].vaddr, &targets[count].vport) ||
		    parse_endpoint(real, &targets[count].raddr, &targets[count].rport)) {
			fprintf(stderr, "ipvs-wait: %s: not SERVICE REAL: %s %s\n", argv[2], service, real);
			return 2;
		}
		snprintf(targets[count].name, sizeof(targets[count].name), "%s", name);
		targets[count].done = 0;
		count++;
	}
	fclose(list);
	if (count == 0) {
		fprintf(stderr, "ipvs-wait: %s lists no real servers\n", argv[2]);
		return 2;
	}
	negate = strncmp(argv[3], "not-", 4) == 0;
	long long deadline = now_us() + (argc == 6 ? atoll(argv[5]) : 120) * 1000000LL;
	int family;
	struct nl_sock *sock = open_ipvs(&family);
	if (!sock)
		return 1;
	long long first = 0, seen = 0;
	int left = count, already = 0;
	for (long polls = 1;; polls++) {
		for (int i = 0; i < count; i++) {
			if (targets[i].done)
				continue;
			int weight = weight_of(sock, family, targets[i].vaddr, targets[i].vport, targets[i].raddr,
					       targets[i].rport);
			seen = now_us();
			if (weight == -2) {
				fprintf(stderr, "ipvs-wait: reading the real servers of a service of %s failed\n", targets[i].name);
				return 1;
			}
			if ((weight == target) != negate) {
				targets[i].done = 1;
				left--;
				if (polls == 1) {
					printf("%s already\n", targets[i].name);
					already++;
					continue;
				}
				printf("%s %lld %ld\n", targets[i].name, seen, polls);
			}
		}
		if (polls == 1) {
			first = seen;
			int fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0) {
				perror(argv[4]);
				return 1;
			}
			close(fd);
		}
		if (left == 0) {
			printf("polls %ld %lld %lld\n", polls, first, seen);
			if (already == count) {
				fprintf(stderr, "ipvs-wait: every real server listed is in the state %s already\n", argv[3]);
				return 3;
			}
			return 0;
		}
		if (seen > deadline) {
			fprintf(stderr, "ipvs-wait: %d of %d real servers not in the state %s after the timeout:", left, count, argv[3]);
			for (int i = 0; i < count; i++)
				if (!targets[i].done)
					fprintf(stderr, " %s", targets[i].name);
			fprintf(stderr, "\n");
			return 1;
		}
		fflush(stdout);
		usleep(1000);
	}
}

int main(int argc, char **argv) {
	struct in_addr vaddr, raddr;
	uint16_t vport, rport;
	int target, negate;
	if (argc > 1 && strcmp(argv[1], "--list") == 0)
		return wait_list(argc, argv);
	if (argc < 5 || argc > 6 || parse_endpoint(argv[1], &vaddr, &vport) || parse_endpoint(argv[2], &raddr, &rport) ||
	    (sscanf(argv[3], "weight=%d", &target) != 1 && sscanf(argv[3], "not-weight=%d", &target) != 1)) {
		fprintf(stderr, "usage: ipvs-wait SERVICE REAL weight=N|not-weight=N READY_FILE [TIMEOUT_SECONDS]\n");
		return 2;
	}
	negate = strncmp(argv[3], "not-", 4) == 0;
	long long deadline = now_us() + (argc == 6 ? atoll(argv[5]) : 120) * 1000000LL;

	int family;
	struct nl_sock *sock = open_ipvs(&family);
	if (!sock)
		return 1;
	for (long polls = 1;; polls++) {
		int weight = weight_of(sock, family, vaddr, vport, raddr, rport);
		long long seen = now_us();
		if (weight == -2) {
			fprintf(stderr, "ipvs-wait: reading the real servers of %s failed\n", argv[1]);
			return 1;
		}
		if (polls == 1) {
			int fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0) {
				perror(argv[4]);
				return 1;
			}
			close(fd);
		}
		if ((weight == target) != negate) {
			if (polls == 1) {
				fprintf(stderr, "ipvs-wait: %s of %s is already in the state %s\n", argv[2], argv[1], argv[3]);
				return 3;
			}
			printf("%lld %ld\n", seen, polls);
			return 0;
		}
		if (seen > deadline) {
			fprintf(stderr, "ipvs-wait: %s of %s still has weight %d after the timeout\n", argv[2], argv[1], weight);
			return 1;
		}
		usleep(1000);
	}
}
