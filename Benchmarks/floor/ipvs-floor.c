/*
 * ipvs-floor: the floor of `make bench`. The least a program on libnl has to do to add IPVS
 * services and real servers: build each NEW_SERVICE / NEW_DEST request with libnl, pack the
 * requests into large sends (256 KiB, like IPVSClient.apply), and collect one acknowledgement per
 * request. No validation beyond parsing, no reads of kernel state, no model.
 *
 * Usage: ipvs-floor RULES
 *
 * RULES is the subset of `ipvsadm -S -n` that the benchmark generates (IPv4, TCP or UDP):
 *   -A -t 10.96.0.1:80 -s rr
 *   -a -t 10.96.0.1:80 -r 10.244.0.1:8080 -m -w 1
 * Exit status 0 when the kernel acknowledged every request without error, 1 otherwise.
 *
 * Build: cc -O2 -o ipvs-floor ipvs-floor.c $(pkg-config --cflags --libs libnl-genl-3.0)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ip_vs.h>
#include <netinet/in.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

enum { SEND_SIZE = 256 * 1024, RECEIVE_BUFFER = 32 << 20, SEND_BUFFER = 4 << 20 };

/* One request: a service (is_dest == 0) or a real server of the service before it. */
struct rule {
	int is_dest;
	uint16_t protocol;
	struct in_addr vaddr;
	uint16_t vport; /* network order */
	char scheduler[IP_VS_SCHEDNAME_MAXLEN];
	struct in_addr raddr;
	uint16_t rport; /* network order */
	uint32_t forwarding;
	uint32_t weight;
};

static void die(const char *what) {
	fprintf(stderr, "ipvs-floor: %s\n", what);
	exit(1);
}

/* ---- rules ------------------------------------------------------------------------------ */

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

static struct rule *read_rules(const char *path, size_t *count) {
	FILE *file = fopen(path, "r");
	if (!file) {
		perror(path);
		exit(1);
	}
	size_t capacity = 1024, n = 0;
	struct rule *rules = malloc(capacity * sizeof(*rules));
	char line[512];
	for (unsigned number = 1; fgets(line, sizeof(line), file); number++) {
		char *words[16];
		int w = 0;
		for (char *t = strtok(line, " \t\r\n"); t && w < 16; t = strtok(NULL, " \t\r\n"))
			words[w++] = t;
		if (w == 0)
			continue;
		struct rule r = {.forwarding = IP_VS_CONN_F_MASQ, .weight = 1};
		strcpy(r.scheduler, "wlc");
		if (strcmp(words[0], "-A") && strcmp(words[0], "-a")) {
			fprintf(stderr, "ipvs-floor: %s:%u: only -A and -a lines are supported\n", path, number);
			exit(1);
		}
		r.is_dest = words[0][1] == 'a';
		int bad = 0, have_key = 0;
		for (int i = 1; i < w && !bad; i++) {
			const char *o = words[i], *v = i + 1 < w ? words[i + 1] : NULL;
			if (!strcmp(o, "-m")) {
				r.forwarding = IP_VS_CONN_F_MASQ;
			} else if (!strcmp(o, "-g")) {
				r.forwarding = IP_VS_CONN_F_DROUTE;
			} else if (!strcmp(o, "-i")) {
				r.forwarding = IP_VS_CONN_F_TUNNEL;
			} else if (!v) {
				bad = 1;
			} else if (!strcmp(o, "-t") || !strcmp(o, "-u")) {
				r.protocol = o[1] == 't' ? IPPROTO_TCP : IPPROTO_UDP;
				bad = parse_endpoint(v, &r.vaddr, &r.vport) != 0;
				have_key = 1, i++;
			} else if (!strcmp(o, "-r")) {
				bad = parse_endpoint(v, &r.raddr, &r.rport) != 0;
				i++;
			} else if (!strcmp(o, "-s")) {
				bad = strlen(v) >= sizeof(r.scheduler);
				if (!bad)
					strcpy(r.scheduler, v);
				i++;
			} else if (!strcmp(o, "-w")) {
				r.weight = (uint32_t)strtoul(v, NULL, 10);
				i++;
			} else {
				bad = 1;
			}
		}
		if (bad || !have_key) {
			fprintf(stderr, "ipvs-floor: %s:%u: cannot read this line\n", path, number);
			exit(1);
		}
		if (n == capacity)
			rules = realloc(rules, (capacity *= 2) * sizeof(*rules));
		rules[n++] = r;
	}
	fclose(file);
	*count = n;
	return rules;
}

/* ---- requests --------------------------------------------------------------------------- */

static void put_service_key(struct nl_msg *msg, const struct rule *r) {
	nla_put_u16(msg, IPVS_SVC_ATTR_AF, AF_INET);
	nla_put_u16(msg, IPVS_SVC_ATTR_PROTOCOL, r->protocol);
	nla_put(msg, IPVS_SVC_ATTR_ADDR, sizeof(r->vaddr), &r->vaddr);
	nla_put_u16(msg, IPVS_SVC_ATTR_PORT, r->vport);
}

/* Builds the request for `r` with libnl and returns it (the caller frees it). */
static struct nl_msg *build(const struct rule *r, int family, uint32_t sequence) {
	/* genlmsg_put does not set NLM_F_REQUEST (nl_send_auto would): without it the kernel only
	 * acknowledges the message and does nothing. */
	struct nl_msg *msg = nlmsg_alloc();
	if (!msg)
		die("out of memory");
	genlmsg_put(msg, NL_AUTO_PORT, sequence, family, 0, NLM_F_REQUEST | NLM_F_ACK,
		    r->is_dest ? IPVS_CMD_NEW_DEST : IPVS_CMD_NEW_SERVICE, IPVS_GENL_VERSION);
	struct nlattr *service = nla_nest_start(msg, IPVS_CMD_ATTR_SERVICE);
	put_service_key(msg, r);
	if (!r->is_dest) {
		struct ip_vs_flags flags = {.flags = 0, .mask = ~0u};
		nla_put_string(msg, IPVS_SVC_ATTR_SCHED_NAME, r->scheduler);
		nla_put(msg, IPVS_SVC_ATTR_FLAGS, sizeof(flags), &flags);
		nla_put_u32(msg, IPVS_SVC_ATTR_TIMEOUT, 0);
		nla_put_u32(msg, IPVS_SVC_ATTR_NETMASK, ~0u);
	}
	nla_nest_end(msg, service);
	if (r->is_dest) {
		struct nlattr *dest = nla_nest_start(msg, IPVS_CMD_ATTR_DEST);
		nla_put(msg, IPVS_DEST_ATTR_ADDR, sizeof(r->raddr), &r->raddr);
		nla_put_u16(msg, IPVS_DEST_ATTR_PORT, r->rport);
		nla_put_u32(msg, IPVS_DEST_ATTR_FWD_METHOD, r->forwarding);
		nla_put_u32(msg, IPVS_DEST_ATTR_WEIGHT, r->weight);
		nla_put_u32(msg, IPVS_DEST_ATTR_U_THRESH, 0);
		nla_put_u32(msg, IPVS_DEST_ATTR_L_THRESH, 0);
		nla_put_u16(msg, IPVS_DEST_ATTR_ADDR_FAMILY, AF_INET);
		nla_nest_end(msg, dest);
	}
	return msg;
}

/* ---- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: ipvs-floor RULES\n");
		return 2;
	}
	size_t count;
	struct rule *rules = read_rules(argv[1], &count);

	struct nl_sock *sock = nl_socket_alloc();
	if (!sock || genl_connect(sock))
		die("cannot open a generic netlink socket");
	int family = genl_ctrl_resolve(sock, IPVS_GENL_NAME);
	if (family < 0)
		die("the kernel has no IPVS generic netlink family");
	int fd = nl_socket_get_fd(sock), one = 1, rcv = RECEIVE_BUFFER, snd = SEND_BUFFER;
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));

	unsigned char *out = malloc(SEND_SIZE + 4096);
	size_t receive_size = 1 << 20;
	unsigned char *in = malloc(receive_size);
	uint32_t sequence = 1;
	size_t failures = 0;
	for (size_t start = 0; start < count;) {
		/* Pack requests until the send is full. */
		size_t used = 0, end = start;
		uint32_t first = sequence;
		while (end < count && used < SEND_SIZE) {
			struct nl_msg *msg = build(&rules[end], family, sequence++);
			struct nlmsghdr *header = nlmsg_hdr(msg);
			memcpy(out + used, header, header->nlmsg_len);
			used += NLMSG_ALIGN(header->nlmsg_len);
			nlmsg_free(msg);
			end++;
		}
		if (nl_sendto(sock, out, used) < 0)
			die("sendto failed");
		/* One acknowledgement per request. */
		size_t pending = end - start;
		while (pending > 0) {
			ssize_t got = recv(fd, in, receive_size, 0);
			if (got < 0) {
				if (errno == EINTR)
					continue;
				fprintf(stderr, "ipvs-floor: receiving acknowledgements: %s\n", strerror(errno));
				return 1;
			}
			int left = (int)got;
			for (struct nlmsghdr *h = (struct nlmsghdr *)in; nlmsg_ok(h, left); h = nlmsg_next(h, &left)) {
				if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < first || h->nlmsg_seq >= sequence)
					continue;
				struct nlmsgerr *e = nlmsg_data(h);
				if (e->error) {
					size_t index = start + (h->nlmsg_seq - first);
					if (failures++ < 10)
						fprintf(stderr, "ipvs-floor: request %zu (rules line %zu): %s\n", index + 1, index + 1,
							strerror(-e->error));
				}
				pending--;
			}
		}
		start = end;
	}
	nl_socket_free(sock);
	if (failures) {
		fprintf(stderr, "ipvs-floor: %zu of %zu requests failed\n", failures, count);
		return 1;
	}
	return 0;
}
