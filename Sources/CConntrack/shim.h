// CConntrack: libnetfilter_conntrack (Debian's libnetfilter-conntrack-dev), through which Conntrack lists
// and deletes the kernel's connection tracking entries over ctnetlink.
#ifndef CCONNTRACK_SHIM_H
#define CCONNTRACK_SHIM_H

// libnfnetlink ships an older copy of the kernel's <linux/netfilter/nfnetlink.h>, whose enum clashes
// with the kernel header CNetlink's modules see: take the kernel's and skip the copy (its guard).
#include <linux/netfilter/nfnetlink.h>
#define _NFNETLINK_H
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#endif
