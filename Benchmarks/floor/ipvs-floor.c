/*
 * ipvs-floor: the floor of `make bench`. The least a program on libnl has to do to add IPVS
 * services and real servers: build each NEW_SERVICE / NEW_DEST request with libnl, pack the
 * requests into large sends (256 KiB, like IPVSClient.apply), and collect one acknowledgement per
 * request. No validation beyond parsing, no reads of kernel state, no model.
 *
 * Usage: ipvs-floor RULES [--bind IFNAME]
 *
 * --bind IFNAME also creates the dummy interface IFNAME (when missing) and adds each service
 * address on it as a /32, as ipvs-agent and kube-proxy do, with RTM_NEWADDR requests built by
 * libnl-route and packed into large sends the same way.
 *
 * RULES is the subset of `ipvsadm -S -n` that the benchmark generates (IPv4, TCP or UDP):
 *   -A -t 10.96.0.1:80 -s rr
 *   -a -t 10.96.0.1:80 -r 10.244.0.1:8080 -m -w 1
 * Exit status 0 when the kernel acknowledged every request without error, 1 otherwise.
 *
 * Build: cc -O2 -o ipvs-floor ipvs-floor.c $(pkg-config --cflags --libs libnl-genl-3.0 libnl-route-3.0)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ip_vs.h>
#include <netinet/in.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <net/if.h>
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

/* ---- sending ---------------------------------------------------------------------------- */

/* Builds request `index` with sequence number `sequence` (the caller frees it). */
typedef struct nl_msg *(*builder)(size_t index, uint32_t sequence, void *context);

static void tune(struct nl_sock *sock) {
	int fd = nl_socket_get_fd(sock), one = 1, rcv = RECEIVE_BUFFER, snd = SEND_BUFFER;
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
}

/* Sends requests 0..<count, packed into sends of SEND_SIZE, and waits for one acknowledgement per
 * request; returns the number of requests the kernel refused (`what` names them in messages). */
static size_t send_all(struct nl_sock *sock, size_t count, builder build_one, void *context, const char *what) {
	static unsigned char *out, *in;
	size_t receive_size = 1 << 20;
	if (!out) {
		out = malloc(SEND_SIZE + 4096);
		in = malloc(receive_size);
	}
	int fd = nl_socket_get_fd(sock);
	uint32_t sequence = 1;
	size_t failures = 0;
	for (size_t start = 0; start < count;) {
		/* Pack requests until the send is full. */
		size_t used = 0, end = start;
		uint32_t first = sequence;
		while (end < count && used < SEND_SIZE) {
			struct nl_msg *msg = build_one(end, sequence++, context);
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
				exit(1);
			}
			int left = (int)got;
			for (struct nlmsghdr *h = (struct nlmsghdr *)in; nlmsg_ok(h, left); h = nlmsg_next(h, &left)) {
				if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < first || h->nlmsg_seq >= sequence)
					continue;
				struct nlmsgerr *e = nlmsg_data(h);
				if (e->error && failures++ < 10)
					fprintf(stderr, "ipvs-floor: %s %u: %s\n", what, h->nlmsg_seq, strerror(-e->error));
				pending--;
			}
		}
		start = end;
	}
	return failures;
}

struct ipvs_context {
	const struct rule *rules;
	int family;
};

static struct nl_msg *build_ipvs(size_t index, uint32_t sequence, void *context) {
	struct ipvs_context *c = context;
	return build(&c->rules[index], c->family, sequence);
}

struct address_context {
	const struct in_addr *addresses;
	int ifindex;
};

/* RTM_NEWADDR for addresses[index]/32 on the interface, built by libnl-route. */
static struct nl_msg *build_address(size_t index, uint32_t sequence, void *context) {
	struct address_context *c = context;
	struct rtnl_addr *address = rtnl_addr_alloc();
	struct nl_addr *local = nl_addr_build(AF_INET, &c->addresses[index], sizeof(struct in_addr));
	struct nl_msg *msg = NULL;
	if (!address || !local)
		die("out of memory");
	nl_addr_set_prefixlen(local, 32);
	rtnl_addr_set_ifindex(address, c->ifindex);
	rtnl_addr_set_family(address, AF_INET);
	rtnl_addr_set_local(address, local);
	rtnl_addr_set_prefixlen(address, 32);
	if (rtnl_addr_build_add_request(address, NLM_F_CREATE | NLM_F_EXCL, &msg) < 0)
		die("cannot build an address request");
	struct nlmsghdr *header = nlmsg_hdr(msg);
	header->nlmsg_seq = sequence;
	header->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nl_addr_put(local);
	rtnl_addr_put(address);
	return msg;
}

/* ---- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
	const char *bind_to = NULL;
	if (argc == 4 && !strcmp(argv[2], "--bind"))
		bind_to = argv[3];
	else if (argc != 2) {
		fprintf(stderr, "usage: ipvs-floor RULES [--bind IFNAME]\n");
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
	tune(sock);
	struct ipvs_context ipvs = {rules, family};
	size_t failures = send_all(sock, count, build_ipvs, &ipvs, "IPVS request");
	nl_socket_free(sock);
	size_t total = count;

	if (bind_to) {
		struct nl_sock *route = nl_socket_alloc();
		if (!route || nl_connect(route, NETLINK_ROUTE))
			die("cannot open a route netlink socket");
		tune(route);
		struct rtnl_link *link = NULL;
		if (rtnl_link_get_kernel(route, 0, bind_to, &link) < 0) {
			struct rtnl_link *dummy = rtnl_link_alloc();
			rtnl_link_set_name(dummy, bind_to);
			rtnl_link_set_type(dummy, "dummy");
			rtnl_link_set_flags(dummy, IFF_UP);
			if (rtnl_link_add(route, dummy, NLM_F_CREATE | NLM_F_EXCL) < 0 ||
			    rtnl_link_get_kernel(route, 0, bind_to, &link) < 0)
				link = NULL;
			rtnl_link_put(dummy);
		}
		int ifindex = link ? rtnl_link_get_ifindex(link) : 0;
		if (link)
			rtnl_link_put(link);
		if (!ifindex) {
			fprintf(stderr, "ipvs-floor: cannot find or create the dummy interface %s\n", bind_to);
			return 1;
		}
		struct in_addr *addresses = malloc(count * sizeof(*addresses));
		size_t n = 0;
		for (size_t i = 0; i < count; i++)
			if (!rules[i].is_dest)
				addresses[n++] = rules[i].vaddr; /* one service per address in the benchmark's rules */
		struct address_context context = {addresses, ifindex};
		failures += send_all(route, n, build_address, &context, "address request");
		total += n;
		nl_socket_free(route);
	}
	if (failures) {
		fprintf(stderr, "ipvs-floor: %zu of %zu requests failed\n", failures, total);
		return 1;
	}
	return 0;
}
