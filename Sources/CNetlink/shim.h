// CNetlink: the C surface of libnl-3 and libnl-genl-3 that the Netlink module uses,
// plus the kernel's IPVS uapi header, whose enums and macros Swift imports as constants.
#ifndef CNETLINK_SHIM_H
#define CNETLINK_SHIM_H

#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/msg.h>
#include <netlink/errno.h>
#include <netlink/genl/genl.h>
#include <netlink/genl/ctrl.h>
#include <linux/netlink.h>
#include <linux/genetlink.h>
#include <linux/ip_vs.h>
#include <sys/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/// `SOL_NETLINK` is a plain macro on glibc but missing from some headers; exposed as a function.
static inline int cnetlink_sol_netlink(void) { return SOL_NETLINK; }

#endif
