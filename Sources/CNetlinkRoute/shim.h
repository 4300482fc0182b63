// CNetlinkRoute: libnl-route-3, used to manage the dummy interface and the VIP addresses on it.
#ifndef CNETLINKROUTE_SHIM_H
#define CNETLINKROUTE_SHIM_H

#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/errno.h>
#include <netlink/cache.h>
#include <netlink/addr.h>
#include <netlink/handlers.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <string.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/// `SOL_NETLINK` is a plain macro on glibc but missing from some headers; exposed as a function.
static inline int cnlroute_sol_netlink(void) { return SOL_NETLINK; }

/// The kernel's extended-acknowledgement text (`NLMSGERR_ATTR_MSG`) of an error message, or NULL.
///
/// Why a shim: libnl 3.7 hands its error callback only the `struct nlmsgerr`, not the TLVs that
/// follow it; finding them needs the enclosing `nlmsghdr` and the `NLM_F_CAPPED`/`NLM_F_ACK_TLVS`
/// layout rules, which are pointer arithmetic on a received buffer and clearer in C.
static inline const char *cnlroute_extack_message(const struct nlmsgerr *error) {
    const struct nlmsghdr *header = (const struct nlmsghdr *)((const char *)error - NLMSG_HDRLEN);
    if (!(header->nlmsg_flags & NLM_F_ACK_TLVS)) return NULL;
    size_t offset = NLMSG_HDRLEN + sizeof(struct nlmsgerr);
    if (!(header->nlmsg_flags & NLM_F_CAPPED)) {
        if (error->msg.nlmsg_len < NLMSG_HDRLEN) return NULL;
        offset += NLMSG_ALIGN(error->msg.nlmsg_len - NLMSG_HDRLEN);
    }
    while (offset + NLA_HDRLEN <= header->nlmsg_len) {
        const struct nlattr *attribute = (const struct nlattr *)((const char *)header + offset);
        if (attribute->nla_len < NLA_HDRLEN || offset + attribute->nla_len > header->nlmsg_len) return NULL;
        if ((attribute->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG && attribute->nla_len > NLA_HDRLEN) {
            const char *text = (const char *)attribute + NLA_HDRLEN;
            size_t length = attribute->nla_len - NLA_HDRLEN;
            return memchr(text, 0, length) ? text : NULL;
        }
        offset += NLA_ALIGN(attribute->nla_len);
    }
    return NULL;
}

#endif
