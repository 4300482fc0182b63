// CEpoll: the Linux headers the HealthCheck TCP poller needs that Swift's Glibc module does not export
// (<sys/epoll.h>, <sys/eventfd.h>, and <netinet/tcp.h> for the handshake round trip in `struct tcp_info`).
// Nothing else: the poller calls the C library directly.
#ifndef CEPOLL_H
#define CEPOLL_H

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/tcp.h>
#endif

#endif
