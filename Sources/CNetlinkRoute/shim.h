// CNetlinkRoute: libnl-route-3, used to manage the dummy interface and the VIP addresses on it.
#ifndef CNETLINKROUTE_SHIM_H
#define CNETLINKROUTE_SHIM_H

#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/errno.h>
#include <netlink/cache.h>
#include <netlink/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>

#endif
