// CNFTables: libnftables (Debian's libnftables-dev), which PacketFilter hands nft's native syntax to.
#ifndef CNFTABLES_SHIM_H
#define CNFTABLES_SHIM_H

#include <nftables/libnftables.h>

#endif
